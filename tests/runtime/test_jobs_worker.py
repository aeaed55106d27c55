"""The batch worker (mlkit_runtime.jobs) for real: shards of a local folder, moto's S3 and the GCS emulator,
a worker SIGKILLed mid-shard and rerun, poison items both ways, fatal errors, malformed lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlkit_runtime.jobs.layout import Job, JobError, input_files, input_lines, prepare
from mlkit_runtime.jobs.loader import load_model
from mlkit_runtime.jobs.storage import LocalStore, Store, open_store
from mlkit_runtime.jobs.worker import FATAL_EXIT, FatalError, ShardFailed, run_shard
from tests.deploy.conftest import gcs, s3  # noqa: F401  (fixtures: moto's S3 and the GCS emulator)
from tests.runtime.conftest import PREDICTORS

SCORER = f"{PREDICTORS / 'scorer.py'}:Predictor"


@pytest.fixture(params=["in-line", "thread"])
def parse(request, monkeypatch):
    """The worker's two ways of parsing a shard (prefetch.py): each test that takes this runs both."""
    from mlkit_runtime.jobs import prefetch

    monkeypatch.setattr(prefetch, "THREAD_BYTES", 1 << 30 if request.param == "in-line" else 0)
    return request.param


def make_job(store: Store, tmp_path: Path, items: list[bytes], shard_size: int = 10, batch_size: int = 4, **kw) -> Job:
    source = tmp_path / "items.jsonl"
    source.write_bytes(b"\n".join(items) + b"\n")
    job = Job(id="t-1", api="scorer", form="jsonl", input=str(source), items=len(items), shard_size=shard_size, batch_size=batch_size, **kw)
    prepare(store, job, input_lines(str(source)))
    return job


def numbers(n: int) -> list[bytes]:
    return [json.dumps({"x": i}).encode() for i in range(n)]


def results(store: Store) -> list[dict]:
    out = []
    for key in store.list("results"):
        out += [json.loads(line) for line in (store.read(key) or b"").splitlines()]
    return out


def check_exactly_once(store: Store, n: int, skipped: set[int] = frozenset()) -> None:
    found = results(store)
    indexes = [r["index"] for r in found]
    assert sorted(indexes) == [i for i in range(n) if i not in skipped], "every item's result exactly once"
    assert all(r["result"] == {"y": r["index"] * 2} for r in found)


def run_every_shard(store: Store, job: Job, config: dict | None = None) -> list:
    model = load_model(SCORER, ".", config or {})
    return [run_shard(store, job, shard, model) for shard in range(job.shards)]


def test_every_item_is_processed_once_in_shards_with_a_done_marker_each(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(25))
    assert job.shards == 3
    reports = run_every_shard(store, job)
    assert [(r.items, r.ok, r.failed) for r in reports] == [(10, 10, 0), (10, 10, 0), (5, 5, 0)]
    check_exactly_once(store, 25)
    assert store.list("done") == ["done/00000.json", "done/00001.json", "done/00002.json"]
    assert store.list("work") == [] and store.list("errors") == []
    # A shard that is done is not run again: its output stays as it is.
    before = store.read("results/00001.jsonl")
    again = run_shard(store, job, 1, load_model(SCORER, ".", {"poison": [12]}))
    assert again.resumed_at == 10 and store.read("results/00001.jsonl") == before


def test_the_predictor_gets_batches_of_the_batch_size(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(10), shard_size=10, batch_size=4)
    calls = tmp_path / "calls"
    run_every_shard(store, job, {"calls_file": str(calls)})
    assert calls.read_text().split() == ["4", "4", "2"]


def test_a_poison_item_is_skipped_into_the_errors_file_with_its_message(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(25), on_error="skip")
    reports = run_every_shard(store, job, {"poison": [13, 21]})
    assert [r.failed for r in reports] == [0, 1, 1]
    check_exactly_once(store, 25, skipped={13, 21})
    errors = [json.loads(line) for key in store.list("errors") for line in (store.read(key) or b"").splitlines()]
    assert errors == [
        {"index": 13, "line": 14, "error": "ValueError: x=13 is poison"},
        {"index": 21, "line": 22, "error": "ValueError: x=21 is poison"},
    ]


def test_a_poison_item_fails_its_shard_and_keeps_what_came_before(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(20), on_error="fail")
    model = load_model(SCORER, ".", {"poison": [15]})
    run_shard(store, job, 0, model)
    with pytest.raises(ShardFailed, match=r"shard 1, item 15 \(line 16\): ValueError: x=15 is poison"):
        run_shard(store, job, 1, model)
    assert store.read("done/00001.json") is None and store.read("results/00001.jsonl") is None
    assert json.loads(store.read("work/00001/progress.json") or b"")["next"] == 5  # items 10..14 are committed
    # The item is fixed (a new predictor): the retry starts at the item, and nothing is written twice.
    report = run_shard(store, job, 1, load_model(SCORER, ".", {}))
    assert report.resumed_at == 5
    check_exactly_once(store, 20)


def test_a_fatal_error_fails_the_shard_at_once_whatever_on_error_says(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(10), on_error="skip", fatal_errors=["MemoryError"])
    with pytest.raises(FatalError, match="MemoryError: x=6 does not fit"):
        run_shard(store, job, 0, load_model(SCORER, ".", {"fatal": [6]}))
    assert store.read("done/00000.json") is None


def test_a_malformed_line_is_reported_with_its_line_number(tmp_path, parse):
    store = LocalStore(tmp_path / "out")
    items = numbers(12)
    items[7] = b'{"x": 7'
    items[9] = b""
    job = make_job(store, tmp_path, items, on_error="skip")
    run_every_shard(store, job)
    errors = [json.loads(line) for key in store.list("errors") for line in (store.read(key) or b"").splitlines()]
    assert [(e["index"], e["line"]) for e in errors] == [(7, 8), (9, 10)]
    assert errors[0]["error"].startswith("line 8 is not JSON")
    check_exactly_once(store, 12, skipped={7, 9})
    failing = LocalStore(tmp_path / "fail")
    job = make_job(failing, tmp_path, items, on_error="fail")
    with pytest.raises(ShardFailed, match="line 8 is not JSON"):
        run_shard(failing, job, 0, load_model(SCORER, ".", {}))


def test_an_async_predict_only_predictor_runs_item_by_item(tmp_path):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(7), shard_size=7, batch_size=3)
    run_shard(store, job, 0, load_model(f"{PREDICTORS / 'scorer.py'}:OneByOne", ".", {}))
    check_exactly_once(store, 7)


def test_files_as_items_reach_the_predictor_as_bytes(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(f"{name}-contents")
    lines = input_files(str(folder))
    store = LocalStore(tmp_path / "out")
    job = Job(id="t-2", api="sizes", form="files", input=str(folder), items=len(lines), shard_size=2, batch_size=2)
    prepare(store, job, lines)
    model = load_model(f"{PREDICTORS / 'scorer.py'}:Sizes", ".", {})
    for shard in range(job.shards):
        run_shard(store, job, shard, model)
    found = results(store)
    assert [(r["index"], Path(r["file"]).name, r["result"]) for r in found] == [
        (0, "a.txt", {"bytes": 14, "head": "a.tx"}), (1, "b.txt", {"bytes": 14, "head": "b.tx"}), (2, "c.txt", {"bytes": 14, "head": "c.tx"})
    ]


def test_an_output_prefix_with_another_jobs_results_is_refused_unless_overwritten(tmp_path):
    store = LocalStore(tmp_path / "out")
    make_job(store, tmp_path, numbers(5))
    with pytest.raises(JobError, match=r"already holds job t-1's results; pick another prefix, or pass --overwrite"):
        make_job(store, tmp_path, numbers(3))
    source = tmp_path / "items.jsonl"
    prepare(store, Job(id="t-9", api="scorer", form="jsonl", input=str(source), items=3, shard_size=10, batch_size=4), numbers(3), overwrite=True)
    assert Job.read(store).id == "t-9" and store.list("shards") == ["shards/00000.jsonl"]
    stranger = LocalStore(tmp_path / "stranger")
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    with pytest.raises(JobError, match="holds files that are not a job's"):
        make_job(stranger, tmp_path, numbers(3))


@pytest.mark.parametrize("bad", ["missing.jsonl", "empty.jsonl"])
def test_a_missing_or_empty_input_is_one_line(tmp_path, bad):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(JobError, match=r"--input .*(no such file|is empty)"):
        input_lines(str(tmp_path / bad))


def worker(job_uri: str, shard: int, config: dict, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlkit_runtime.jobs", "--job", job_uri, "--checkpoint-s", "0"],
        env={**os.environ, **(env or {}), "JOB_COMPLETION_INDEX": str(shard), "MLKIT_PREDICTOR": SCORER, "MLKIT_CONFIG": json.dumps(config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_sigkilled_mid_shard_resumes_and_writes_no_item_twice(tmp_path):
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, numbers(40), shard_size=40, batch_size=2)
    proc = worker(str(tmp_path / "out"), 0, {"sleep_s": 0.05})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = store.read("work/00000/progress.json")
        if progress and json.loads(progress)["next"] >= 10:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.read("done/00000.json") is None, "killed before it finished"
    resumed = worker(str(tmp_path / "out"), 0, {})
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    marker = json.loads(store.read("done/00000.json") or b"")
    assert 10 <= marker["resumed_at"] < 40 and marker["ok"] == 40
    check_exactly_once(store, 40)
    assert job.items == 40


def test_the_worker_exit_codes_tell_the_job_what_to_do(tmp_path):
    store = LocalStore(tmp_path / "out")
    make_job(store, tmp_path, numbers(10), fatal_errors=["MemoryError"])
    proc = worker(str(tmp_path / "out"), 0, {"fatal": [3]})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == FATAL_EXIT and "MemoryError: x=3 does not fit" in err and "Traceback" not in err
    proc = worker(str(tmp_path / "out"), 0, {"poison": [3]})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "item 3 (line 4): ValueError: x=3 is poison" in err and "Traceback" not in err
    proc = worker(str(tmp_path / "out"), 0, {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    check_exactly_once(store, 10)
    proc = worker(str(tmp_path / "nowhere"), 0, {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "job.json: no such file" in err and "Traceback" not in err


def test_s3_holds_a_job_as_a_folder_does(s3, tmp_path):  # noqa: F811
    store = open_store("s3://models/jobs/one")
    job = make_job(store, tmp_path, numbers(25), on_error="skip")
    run_every_shard(store, job, {"poison": [4]})
    check_exactly_once(store, 25, skipped={4})
    assert store.list("done") == ["done/00000.json", "done/00001.json", "done/00002.json"] and store.list("work") == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]]
    assert all(k.startswith("jobs/one/") for k in keys)


def test_gcs_holds_a_job_as_a_folder_does(gcs, tmp_path):  # noqa: F811
    store = open_store("gs://models/jobs/two")
    job = make_job(store, tmp_path, numbers(12), on_error="skip")
    run_every_shard(store, job, {"poison": [11]})
    check_exactly_once(store, 12, skipped={11})
    assert store.list("errors") == ["errors/00001.jsonl"]


TRICKY = [
    [{"index": 1}, {"index": 2}],  # the separator itself, between objects inside a result: written item by item
    {"text": '},{"index":7,"result":'},  # the same text inside a string: its quotes are escaped, no boundary
    "line\nbreak\u2028",
    None,
    0.1,
    {"index": 3, "result": [1]},
    [],
    {},
]


@pytest.mark.parametrize("size", [1, 2, 5, len(TRICKY)])
def test_a_batchs_result_lines_are_what_each_item_alone_would_write(size):
    """The fast path's one dumps call per batch (result_lines) writes byte for byte the lines of one call per item."""
    import orjson

    from mlkit_runtime.jobs.worker import result_lines

    for start in range(len(TRICKY) - size + 1):
        batch = TRICKY[start:start + size]
        alone = b"".join(orjson.dumps({"index": 40 + k, "result": r}, option=orjson.OPT_APPEND_NEWLINE) for k, r in enumerate(batch))
        assert result_lines(40, batch) == alone, batch
        assert [json.loads(line)["result"] for line in result_lines(40, batch).splitlines()] == batch


REVIEW = f"{PREDICTORS / 'formed.py'}:Review"


def reviews(n: int, misfits: dict[int, dict]) -> list[bytes]:
    return [json.dumps(misfits.get(i, {"text": f"review {i}", "stars": 1 + i % 5})).encode() for i in range(n)]


def test_a_pod_checks_items_against_the_predictors_input_under_on_error(tmp_path, parse):
    """A job whose items were not checked before sharding (`mlkit job submit` that could not import the class):
    the worker checks each item as `mlkit job run` does, and on_error decides about a misfit."""
    items = reviews(12, {5: {"text": "x" * 30}, 9: {"text": "fine", "stars": 9}})
    skip = LocalStore(tmp_path / "skip")
    job = make_job(skip, tmp_path, items, on_error="skip")
    reports = [run_shard(skip, job, shard, load_model(REVIEW, ".", {})) for shard in range(job.shards)]
    assert sum(r.failed for r in reports) == 2 and sum(r.ok for r in reports) == 10
    errors = [json.loads(line) for key in skip.list("errors") for line in (skip.read(key) or b"").splitlines()]
    assert [(e["index"], e["line"]) for e in errors] == [(5, 6), (9, 10)]
    assert errors[0]["error"].startswith("does not fit the predictor's Input: text: String should have at most 20 characters")
    assert errors[1]["error"].startswith("does not fit the predictor's Input: stars: Input should be less than or equal to 5")
    done = [json.loads(line) for key in skip.list("results") for line in (skip.read(key) or b"").splitlines()]
    assert [r["index"] for r in done] == [i for i in range(12) if i not in (5, 9)]
    failing = LocalStore(tmp_path / "fail")
    job = make_job(failing, tmp_path, items, on_error="fail")
    with pytest.raises(ShardFailed, match=r"shard 0, item 5 \(line 6\): does not fit the predictor's Input: text: String should have"):
        run_shard(failing, job, 0, load_model(REVIEW, ".", {}))


def test_items_checked_before_sharding_are_not_checked_again(tmp_path):
    """`mlkit job run` checked them (job.json's checked): the worker does not pay for it twice."""
    store = LocalStore(tmp_path / "out")
    job = make_job(store, tmp_path, reviews(4, {2: {"text": "x" * 30}}), on_error="skip", checked=True)
    assert run_shard(store, job, 0, load_model(REVIEW, ".", {})).failed == 0
