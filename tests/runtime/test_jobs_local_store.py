"""The local folder store of batch jobs (runtime/jobs/storage.py) under several writers, as `mlkit job run`'s processes use it."""

from __future__ import annotations

import threading

from mlkit_runtime.jobs.storage import LocalStore, StorageError


def test_writers_of_sibling_folders_survive_each_others_pruning(tmp_path):
    """A delete prunes the folders it empties (work/, as a bucket has no empty prefix); a writer making work/<shard>/ at
    that moment used to fail with 'No such file or directory' (seen once in ten runs of 10,000 items in 8 shards)."""
    store = LocalStore(tmp_path)
    errors: list[str] = []

    def churn(shard: str) -> None:
        for i in range(2000):
            key = f"work/{shard}/{i:09d}.results.jsonl"
            try:
                store.write(key, b"x")
                assert store.read(key) == b"x"
                store.delete(key)
            except StorageError as exc:
                errors.append(str(exc))
                return

    threads = [threading.Thread(target=churn, args=(f"{n:05d}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not (tmp_path / "work").exists()  # every folder emptied and pruned, none left half-made
