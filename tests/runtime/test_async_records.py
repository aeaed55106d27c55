"""How many record writes a request costs, and in what order (issue 24's throughput goal: a record write is a
file replace or an object PUT, the largest part of a fast model's request on the async path).

The real runtime in one process (starlette's TestClient runs its lifespan, so the real worker pulls from the
real embedded queue and writes into a real results folder), with FileStore.put wrapped to note each write.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import struct
import threading
import time
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from mlkit_runtime.app import create_app
from mlkit_runtime.asyncq import file_swap, records, worker
from mlkit_runtime.asyncq.local import FileStore, LocalQueue
from mlkit_runtime.settings import Settings
from tests.runtime.conftest import PREDICTORS


@pytest.fixture
def writes(monkeypatch):
    """Every record write as (request id, status, writing thread), in the order the store received them."""
    seen: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    real = FileStore.put

    def noted(self: FileStore, key: str, data: bytes) -> None:
        real(self, key, data)
        if key.endswith(".json"):
            record = orjson.loads(data)
            with lock:
                seen.append((record["id"], record["status"], threading.get_ident()))

    monkeypatch.setattr(FileStore, "put", noted)
    return seen


def app(tmp_path, **more):
    settings = Settings.load({
        "predictor": f"{PREDICTORS}/queued.py:Predictor", "model_dir": str(tmp_path), "name": "queued", "access_log": False,
        "mode": "async", "queue": "local", "results": f"file:{tmp_path / 'results'}", "max_batch_size": 8, **more,
    }, environ={})
    return TestClient(create_app(settings))


def finished(client: TestClient, ids: list[str], bound_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        got = [client.get(f"/predict/{i}").json() for i in ids]
        if all(r["status"] in ("completed", "failed") for r in got):
            return got
        time.sleep(0.02)
    raise AssertionError(f"not finished in {bound_s} s: {[r['status'] for r in got]}")


def test_a_fast_request_is_written_twice_queued_then_completed(tmp_path, writes):
    """The front's `queued` and the worker's final record: no `running` write for a batch done in a moment."""
    with app(tmp_path) as client:
        ids = [client.post("/predict", json={"x": n}).json()["id"] for n in range(24)]
        assert [r["result"]["y"] for r in finished(client, ids)] == [2 * n for n in range(24)]
    for rid in ids:
        assert [status for i, status, _ in writes if i == rid] == ["queued", "completed"]


def test_a_batchs_results_go_to_a_folder_in_one_thread_call(tmp_path, writes):
    """A folder's write is a little CPU: a hop to a thread per request would cost about as much again."""
    with app(tmp_path) as client:
        slow = client.post("/predict", json={"x": 0, "sleep_s": 2.0}).json()["id"]
        deadline = time.monotonic() + 10
        while client.get(f"/predict/{slow}").json()["status"] != "running":  # the worker holds it alone, for 2 s
            assert time.monotonic() < deadline, "the slow request was never shown running"
            time.sleep(0.02)
        ids = [client.post("/predict", json={"x": n}).json()["id"] for n in range(8)]  # so these 8 wait, and go as one batch
        finished(client, [slow, *ids])
    threads = {thread for i, status, thread in writes if status == "completed" and i in ids}
    assert len(threads) == 1, threads


def test_a_long_batch_shows_running_before_its_result_never_after(tmp_path, writes):
    with app(tmp_path) as client:
        slow = client.post("/predict", json={"x": 1, "sleep_s": 1.0}).json()["id"]
        deadline = time.monotonic() + 10
        while client.get(f"/predict/{slow}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the slow request was never shown running"
            time.sleep(0.02)
        record = finished(client, [slow])[0]
        assert record["status"] == "completed" and record["started_at"] <= record["finished_at"]
    assert [status for i, status, _ in writes if i == slow] == ["queued", "running", "completed"]


def test_a_running_write_still_in_flight_lands_before_the_result(tmp_path, writes, monkeypatch):
    """A store slower than the prediction: the worker waits for its `running` writes, so `completed` is last."""
    monkeypatch.setattr(worker, "RUNNING_AFTER_S", 0.05)
    real = FileStore.put  # the noting wrapper

    def slow_running(self: FileStore, key: str, data: bytes) -> None:
        if b'"running"' in data:
            time.sleep(1.0)  # the batch (0.5 s) ends while this write is still going
        real(self, key, data)

    monkeypatch.setattr(FileStore, "put", slow_running)
    with app(tmp_path) as client:
        rid = client.post("/predict", json={"x": 3, "sleep_s": 0.5}).json()["id"]
        assert finished(client, [rid])[0]["status"] == "completed"
        assert client.get(f"/predict/{rid}").json()["status"] == "completed"
    assert [status for i, status, _ in writes if i == rid] == ["queued", "running", "completed"]


def test_the_results_folder_is_written_whole_and_private(tmp_path, monkeypatch):
    store = FileStore(str(tmp_path / "results"))
    other = FileStore(str(tmp_path / "results"))  # a second process on the same folder (front and worker pods on a laptop)
    store.put("a.json", b'{"v": 1}')
    other.put("a.json", b'{"v": 2}')
    store.put("payloads/b", b"x" * 200_000)  # a prefix not there yet
    assert store.get("a.json") == b'{"v": 2}' and store.get("payloads/b") == b"x" * 200_000 and store.get("c.json") is None
    assert (tmp_path / "results" / "a.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="not a store key"):
        store.put("../escape.json", b"{}")

    def refused(src, dst):
        raise OSError(28, "No space left on device")

    def exchange_refused(*args):
        ctypes.set_errno(28)
        return -1

    monkeypatch.setattr("os.replace", refused)
    monkeypatch.setattr(file_swap, "_exchange", exchange_refused if file_swap._exchange else None)
    with pytest.raises(OSError, match="No space"):
        store.put("a.json", b'{"v": 3}')
    assert store.get("a.json") == b'{"v": 2}'  # the old record stands, whole
    del other  # the file its put took out of a.json was kept, to be written over; it goes with the store
    left = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "results").rglob("*"))
    assert left == ["results/a.json", "results/payloads", "results/payloads/b"]  # no temporary file left behind


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_DELALLOC = 0x4


def delalloc(path: Path) -> bool | None:
    """Whether the file's data is still only in memory, its blocks not yet chosen (ext4's delayed
    allocation); None where the filesystem cannot say (no FIEMAP)."""
    request = bytearray(struct.pack("=QQIIII", 0, 2**64 - 1, 0, 0, 1, 0) + bytes(56))  # struct fiemap with room for one extent
    with open(path, "rb") as f:
        try:
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, request)
        except OSError:
            return None
    mapped = struct.unpack_from("=I", request, 20)[0]
    flags = struct.unpack_from("=I", request, 32 + 40)[0]  # the first extent's fe_flags
    return bool(mapped) and bool(flags & FIEMAP_EXTENT_DELALLOC)


def test_replacing_a_record_leaves_its_data_to_the_kernels_writeback(tmp_path):
    """A worker's result replaces the `queued` record. ext4 makes a rename over a file write the new one out
    at once, in the caller (a disk request per result, half a record write's CPU): the store exchanges the
    names instead, so the new record's blocks are still unallocated when put returns."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"{}")
    if not delalloc(probe):
        pytest.skip("this filesystem allocates a file's blocks as it is written: no flush at rename to avoid")
    store = FileStore(str(tmp_path / "results"))
    keys = [f"{records.new_id()}.json" for _ in range(10)]
    for key in keys:
        store.put(key, b'{"status": "queued"}')
    for key in keys:
        store.put(key, b'{"status": "completed"}')
    assert [store.get(key) for key in keys] == [b'{"status": "completed"}'] * 10
    # The kernel's own writeback may come by meanwhile and take some; a flush at each rename takes all.
    assert any(delalloc(tmp_path / "results" / key) for key in keys)
    del store  # the old records, kept to be written over, go with the store
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(keys)  # no temporary left


def test_results_are_written_over_kept_files_not_new_ones(tmp_path):
    """A file deleted per result makes every later create on ext4 without a journal walk past it for
    minutes (120-180 us of CPU a create here): the files swaps take out are kept and written over."""
    store = FileStore(str(tmp_path / "results"))
    keys = [f"{records.new_id()}.json" for _ in range(3 * FileStore.KEEP)]
    for key in keys:
        store.put(key, b'{"status": "queued", "padding": "a queued record longer than the result"}')
    inodes = {p.stat().st_ino for p in (tmp_path / "results").iterdir()}
    for key in keys:
        store.put(key, b'{"status": "completed"}')
    folder = list((tmp_path / "results").iterdir())
    assert [store.get(key) for key in keys] == [b'{"status": "completed"}'] * len(keys)  # cut to length, not the old tail
    assert len(folder) == len(keys) + FileStore.KEEP + 1  # the results, and the kept files (hidden names)
    # Past the first KEEP + 1 results, every one went into a file the queued records had: no new inode.
    assert len({p.stat().st_ino for p in folder} - inodes) == FileStore.KEEP + 1


def test_a_reader_never_gets_the_record_a_kept_file_was_written_over_with(tmp_path, monkeypatch):
    """get() opened a.json's file; before it reads, a put takes that file out of the name and another put
    writes b.json's record over it. The reader must answer a.json's record, not b.json's."""
    from mlkit_runtime.asyncq import local

    store = FileStore(str(tmp_path / "results"))
    store.KEEP = 0  # reuse a kept file at once
    store.put("a.json", b'{"a": 1}')
    store.put("b.json", b'{"b": "secret"}')
    store.put("a.json", b'{"a": 2}')  # a.json's first file is kept now
    real = fcntl.flock
    raced = []

    def racing(fd, op):
        if op == fcntl.LOCK_SH and not raced:  # the reader has a.json's file open, not yet locked
            raced.append(fd)
            store.put("a.json", b'{"a": 3}')  # over the kept file; the reader's file is kept now
            store.put("b.json", b'{"b": "new secret"}')  # over the reader's file
        real(fd, op)

    monkeypatch.setattr(local.fcntl, "flock", racing)
    assert store.get("a.json") == b'{"a": 3}'
    assert raced and store.get("b.json") == b'{"b": "new secret"}'


def test_a_link_put_in_place_of_a_kept_file_is_not_written_through(tmp_path):
    """A kept file is reopened by its hidden name: a symlink planted there must not send a record elsewhere."""
    store = FileStore(str(tmp_path / "results"))
    store.KEEP = 0
    store.put("a.json", b'{"a": 1}')
    store.put("a.json", b'{"a": 2}')  # a.json's first file is kept, under a hidden name
    (kept,) = [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".tmp-")]
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the store's")
    kept.unlink()
    kept.symlink_to(outside)
    store.put("b.json", b'{"b": 1}')
    assert outside.read_bytes() == b"not the store's"
    assert store.get("b.json") == b'{"b": 1}' and not (tmp_path / "results" / "b.json").is_symlink()


def test_a_kept_file_a_reader_holds_is_not_written_over(tmp_path):
    store = FileStore(str(tmp_path / "results"))
    store.KEEP = 0
    store.put("a.json", b'{"a": 1}')
    with open(tmp_path / "results" / "a.json", "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_SH)  # as get() holds it while it reads
        store.put("a.json", b'{"a": 2}')  # a.json's first file (held) is kept
        store.put("b.json", b'{"b": 1}')
        store.put("b.json", b'{"b": 2}')  # the kept file is locked: a new file instead
        assert held.read() == b'{"a": 1}'
    assert (store.get("a.json"), store.get("b.json")) == (b'{"a": 2}', b'{"b": 2}')


@pytest.fixture
def sent(monkeypatch):
    """Every message the front queues, as sent."""
    seen: list[bytes] = []
    real = LocalQueue.send

    def noted(self: LocalQueue, body: bytes) -> None:
        seen.append(body)
        real(self, body)

    monkeypatch.setattr(LocalQueue, "send", noted)
    return seen


def test_a_json_payload_travels_as_itself_and_other_bytes_as_base64(tmp_path, sent):
    """JSON in the message as JSON: the worker parses it with the message, instead of decoding base64 and parsing twice."""
    with app(tmp_path) as client:
        first = client.post("/predict", json={"x": 4}).json()["id"]
        second = client.post("/predict", content=b"\x00\x01raw", headers={"content-type": "application/octet-stream"}).json()["id"]
        assert [r["result"] for r in finished(client, [first, second])] == [{"y": 8, "n": None}, {"bytes": 5}]
    messages = [orjson.loads(body) for body in sent]
    assert messages[0] == {"id": first, "created_at": messages[0]["created_at"], "json": True, "payload": {"x": 4}}
    assert "body" not in messages[0] and base64.b64decode(messages[1]["body"]) == b"\x00\x01raw" and messages[1]["json"] is False


def test_a_cloud_queue_gets_what_the_release_before_reads():
    """SQS and Pub/Sub messages are read by the previous release's workers while a rollout runs: they dead-letter
    a message without `body`, so JSON goes to a cloud queue as base64 (this release's workers read both)."""
    from mlkit_runtime.asyncq.aws import SqsQueue
    from mlkit_runtime.asyncq.gcp import PubSubQueue

    assert SqsQueue.one_release is False and PubSubQueue.one_release is False and LocalQueue.one_release is True
    message = orjson.loads(records.envelope("a" * 32, records.now(), b'{"x": 4}', True, False, inline_json=SqsQueue.one_release))
    assert "payload" not in message and base64.b64decode(message["body"]) == b'{"x": 4}' and message["json"] is True


def enqueue(client: TestClient, rid: str, created: str, message: bytes) -> None:
    """What the front does, with a message of the test's making: the `queued` record, then the message."""
    worker = client.app.state.runtime.worker  # type: ignore[attr-defined]
    worker.store.put(records.result_key(rid), records.record(rid, "queued", created))
    worker.queue.send(message)


def test_a_message_from_an_older_front_is_still_read(tmp_path):
    """Fronts before the JSON `payload` sent JSON as base64 `body`: a worker takes both (a rollout runs both for a while)."""
    with app(tmp_path) as client:
        rid, created = records.new_id(), records.now()
        enqueue(client, rid, created, orjson.dumps({"id": rid, "created_at": created, "json": True, "body": base64.b64encode(b'{"x": 5}').decode()}))
        assert finished(client, [rid])[0]["result"] == {"y": 10, "n": None}


def test_a_queued_payload_nested_too_deep_is_dead_lettered_not_run(tmp_path):
    """The front refuses such a body (400); one put on the queue some other way is not handed to the predictor either."""
    with app(tmp_path, max_json_depth=4) as client:
        queue = client.app.state.runtime.worker.queue  # type: ignore[attr-defined]
        deep, fine, created = records.new_id(), records.new_id(), records.now()
        enqueue(client, deep, created, records.envelope(deep, created, b'{"x": 1, "a": [[[[1]]]]}', True, False, inline_json=True))
        enqueue(client, fine, created, records.envelope(fine, created, b'{"x": 1, "a": [[[1]]]}', True, False, inline_json=True))
        assert finished(client, [fine])[0]["status"] == "completed"
        deadline = time.monotonic() + 10
        while not queue.dead:
            assert time.monotonic() < deadline, "the deep message was never dead-lettered"
            time.sleep(0.02)
        assert [orjson.loads(body)["id"] for body in queue.dead] == [deep]
        assert client.get(f"/predict/{deep}").json()["status"] == "queued"  # nothing ran it


def test_the_embedded_queue_is_called_in_the_event_loop(tmp_path, monkeypatch):
    """Its receive and delete are microseconds in memory: a hop to a thread for each would cost more than the
    call. Only a receive that waits for a message (the queue empty) waits in a thread."""
    receives: list[tuple[int, float, int]] = []  # (thread, wait, messages)
    deletes: set[int] = set()
    real_receive, real_delete = LocalQueue.receive, LocalQueue.delete

    def receive(self: LocalQueue, most: int, wait_s: float) -> list:
        got = real_receive(self, most, wait_s)
        receives.append((threading.get_ident(), wait_s, len(got)))
        return got

    def delete(self: LocalQueue, messages: list) -> None:
        deletes.add(threading.get_ident())
        real_delete(self, messages)

    monkeypatch.setattr(LocalQueue, "receive", receive)
    monkeypatch.setattr(LocalQueue, "delete", delete)
    with app(tmp_path) as client:
        loop_thread = client.portal.call(threading.get_ident)  # type: ignore[union-attr]
        slow = client.post("/predict", json={"x": 0, "sleep_s": 0.5}).json()["id"]
        ids = [client.post("/predict", json={"x": n}).json()["id"] for n in range(16)]  # queued while the worker holds `slow`
        finished(client, [slow, *ids])
    assert {thread for thread, wait, got in receives if got and not wait} == {loop_thread}  # the 16, taken at once
    assert all(thread != loop_thread for thread, wait, _ in receives if wait)  # a wait never blocks the loop
    assert deletes == {loop_thread}
