"""Tensors from the fronts to the model process through shared memory (runtime/shared_buffers.py):
the link carries offsets, not tensor bytes; slots live until the model process answered; nothing is
left in /dev/shm; concurrent large requests keep their own bytes; answers match the other modes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlkit_runtime.model_link import LinkEnd, ModelLink, split
from mlkit_runtime.settings import Settings, SettingsError
from mlkit_runtime.shared_buffers import THRESHOLD, Mapped, Region, create
from tests.runtime.conftest import PREDICTORS, start, stop

INFER = "/v2/models/echo/infer"
MB4 = 1_000_000  # FP32 elements: a 4 MB tensor


def binary_infer(url: str, array: np.ndarray, timeout: float = 30, binary_output: bool = True) -> httpx.Response:
    raw = array.astype("<f4").tobytes()
    header = {"inputs": [{"name": "x", "shape": list(array.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}],
              "parameters": {"binary_data_output": binary_output}}
    head = json.dumps(header).encode()
    return httpx.post(url + INFER, content=head + raw, timeout=timeout,
                      headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"})


def outputs(r: httpx.Response) -> dict[str, np.ndarray]:
    """Each output tensor by name, from a binary or JSON answer."""
    assert r.status_code == 200, r.text[:300]
    n = int(r.headers.get("inference-header-content-length", len(r.content)))
    header, rest = json.loads(r.content[:n]), r.content[n:]
    found = {}
    for o in header["outputs"]:
        dtype = {"FP32": "<f4", "BOOL": "?", "INT64": "<i8"}[o["datatype"]]
        if "binary_data_size" in o.get("parameters", {}):
            size = o["parameters"]["binary_data_size"]
            found[o["name"]] = np.frombuffer(rest[:size], dtype).reshape(o["shape"])
            rest = rest[size:]
        else:
            found[o["name"]] = np.array(o["data"], dtype).reshape(o["shape"])
    return found


def shm_names() -> set[str]:
    """What this runtime could leave in /dev/shm (its own memfds have no name; multiprocessing's would)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(("mlkit", "psm_"))}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def maps_region(pid: int) -> bool:
    return "memfd:mlkit-front" in Path(f"/proc/{pid}/maps").read_text()


# --- the link itself, both ends in this process over a real socket pair --------------------------------


def run_link(region: Region | None, mapped: Mapped | None, payloads: list, answer_after: int) -> tuple[int, list, list]:
    """Send `payloads` as predict calls; the model side (a thread) counts the bytes it reads, unpacks,
    and answers each once `answer_after` calls have arrived. Returns the bytes read, the arrays the model
    side saw (copied), and the slots held just before the first answer."""
    front_sock, model_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    seen: list = []
    held_before_answer: list = []
    read = [0]

    def model_side() -> None:
        end = LinkEnd(model_sock)
        buffer = bytearray()
        calls = []
        while len(calls) < len(payloads):
            data = model_sock.recv(1 << 20)
            read[0] += len(data)
            for message in split(buffer, data):
                if message[1] == "shm":  # large buffers in the region: the message is unpickled over it
                    message = mapped.unpack(*message[2:])
                i, op, payload = message
                assert op == "predict"
                calls.append((i, payload))
                if len(calls) == answer_after:
                    held_before_answer.extend(sorted(region.held.values()) if region else [])
                    for j, p in calls:
                        seen.append(np.array(p["x"]))
                        end.send((j, "ok", float(p["x"][0]), 1))

    async def front() -> list:
        link = ModelLink(front_sock, region)
        await link.open()
        answers = await asyncio.gather(*(link.call("predict", p) for p in payloads))
        link.close()
        return answers

    thread = threading.Thread(target=model_side)
    thread.start()
    answers = asyncio.run(front())
    thread.join(10)
    model_sock.close()
    assert answers == [float(p["x"][0]) for p in payloads]
    return read[0], seen, held_before_answer


@pytest.fixture
def region() -> tuple[Region, Mapped]:
    fd = create(16 << 20)
    pair = Region(fd, 16 << 20), Mapped(fd, 16 << 20)
    os.close(fd)
    return pair


def test_a_4_mb_tensor_crosses_as_an_offset_not_through_the_socket(region: tuple[Region, Mapped]) -> None:
    front_region, mapped = region
    x = np.arange(MB4, dtype=np.float32)
    read, seen, _ = run_link(front_region, mapped, [{"x": x}], 1)
    assert read < 2000, read  # the pickle with (offset, length): the 4 MB stayed in shared memory
    assert np.array_equal(seen[0], x)
    assert front_region.held == {} and front_region.free == [(0, 16 << 20)]  # answered: its slot is free again
    read, seen, _ = run_link(None, None, [{"x": x}], 1)  # shared memory off: the same call through the socket
    assert read > 4_000_000 and np.array_equal(seen[0], x)


def test_a_torch_tensor_crosses_as_an_offset_and_arrives_a_tensor_over_the_region(region: tuple[Region, Mapped]) -> None:
    # oip_tensors = "torch": the front makes the tensor; torch's own pickling would put its bytes in the message.
    torch = pytest.importorskip("torch")
    front_region, mapped = region
    x = torch.arange(MB4, dtype=torch.float32)
    data, slots = front_region.pack("call", {"x": x})
    assert len(data) < 2000 and slots == [(0, 4 * MB4)]
    got = mapped.unpack(data, slots)["x"]
    assert type(got) is torch.Tensor and torch.equal(got, x)
    region_start = np.frombuffer(mapped.map, np.uint8).ctypes.data
    assert got.data_ptr() == region_start  # the model process's tensor is the region's memory, not a copy


def test_a_full_region_sends_through_the_socket_and_slots_never_overlap(region: tuple[Region, Mapped]) -> None:
    front_region, _ = region
    rng = np.random.default_rng(0)
    for _ in range(200):  # calls of random sizes, answered in random order
        key = int(rng.integers(1 << 30))
        n = int(rng.integers(THRESHOLD, 3 << 20))
        data, slots = front_region.pack(key, np.zeros(n, np.uint8))
        if not slots:  # in the pickle, only when no free block could take it
            assert len(data) > n and max((length for _, length in front_region.free), default=0) < n
        spans = sorted(span for held in front_region.held.values() for span in held)
        assert all(a + length <= b for (a, length), (b, _) in zip(spans, spans[1:], strict=False))  # no two live slots share a byte
        if rng.random() < 0.5 and front_region.held:
            front_region.release(list(front_region.held)[int(rng.integers(len(front_region.held)))])
    assert front_region.full > 0
    for key in list(front_region.held):
        front_region.release(key)
    assert front_region.free == [(0, 16 << 20)]  # every slot given back, the free list joined again


def test_small_buffers_stay_in_the_socket(region: tuple[Region, Mapped]) -> None:
    front_region, mapped = region
    small = np.ones(THRESHOLD // 4 - 1, dtype=np.float32)  # one element short of the threshold
    read, seen, held = run_link(front_region, mapped, [{"x": small}], 1)
    assert held == [] and read > small.nbytes and np.array_equal(seen[0], small)


def test_slots_are_held_until_the_model_process_answers(region: tuple[Region, Mapped]) -> None:
    # Three calls in flight at once: three different slots, none given back before the answers.
    front_region, mapped = region
    payloads = [{"x": np.full(MB4, k, dtype=np.float32)} for k in range(3)]
    _, seen, held = run_link(front_region, mapped, payloads, 3)
    offsets = [slots[0][0] for slots in held]
    assert len(set(offsets)) == 3, held
    assert [int(s[0]) for s in seen] == [0, 1, 2] and all((s == s[0]).all() for s in seen)
    assert front_region.held == {}


def test_a_cancelled_call_keeps_its_slot_until_the_model_process_answers(region: tuple[Region, Mapped]) -> None:
    front_region, mapped = region
    front_sock, model_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    async def main() -> None:
        link = ModelLink(front_sock, front_region)
        await link.open()
        call = asyncio.ensure_future(link.call("predict", {"x": np.full(MB4, 7, dtype=np.float32)}))
        await asyncio.sleep(0.05)
        call.cancel()  # the client went away: the model process still holds the array
        await asyncio.sleep(0.05)
        assert len(front_region.held) == 1
        data = model_sock.recv(1 << 20)
        (i, op, pickled, slots), = split(bytearray(), data)
        assert op == "shm"
        x = mapped.unpack(pickled, slots)[2]["x"]
        second = asyncio.ensure_future(link.call("predict", {"x": np.full(MB4, 8, dtype=np.float32)}))
        await asyncio.sleep(0.05)
        assert (x == 7).all()  # the second call did not take the cancelled call's slot
        LinkEnd(model_sock).send((i, "ok", None, 1))
        await asyncio.sleep(0.05)
        assert len(front_region.held) == 1  # only the second's
        second.cancel()
        link.close()

    asyncio.run(main())
    model_sock.close()


def test_the_shared_memory_setting_is_checked() -> None:
    with pytest.raises(SettingsError, match="--shared-memory-mb / MLKIT_SHARED_MEMORY_MB must not be negative, got -1"):
        Settings.load({"predictor": "p.py:P", "shared_memory_mb": "-1"})
    with pytest.raises(SettingsError, match="--shared-memory-mb / MLKIT_SHARED_MEMORY_MB must be at most 65536 "):
        Settings.load({"predictor": "p.py:P", "shared_memory_mb": "70000"})


# --- real servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echoes(tmp_path_factory):
    """The same predict_batch served three ways."""
    modes = {"single": ["--fronts", "1"], "shared": ["--fronts", "2"], "socket": ["--fronts", "2", "--shared-memory-mb", "0"]}
    servers = {name: start(tmp_path_factory.mktemp(name), "shared.py:Echo", *flags) for name, flags in modes.items()}
    yield servers
    for s in servers.values():
        stop(s)


def test_a_large_binary_tensor_answers_the_same_in_every_mode(echoes) -> None:
    x = np.random.default_rng(1).standard_normal((1000, 1000)).astype(np.float32)
    answers = {name: binary_infer(s.url, x) for name, s in echoes.items()}
    for name, r in answers.items():
        got = outputs(r)
        assert np.array_equal(got["y"], x), name
        assert bool(got["shared"][0]) == (name == "shared"), name  # only the fronts with shared memory use it
    # As JSON (the front encodes what came back the same way whatever carried the input there):
    y = {name: next(o for o in binary_infer(s.url, x, binary_output=False).json()["outputs"] if o["name"] == "y") for name, s in echoes.items()}
    assert len({json.dumps(o) for o in y.values()}) == 1 and np.array_equal(np.array(y["shared"]["data"], np.float32), x.reshape(-1))
    # A JSON tensor is decoded to numpy in the front: a large one crosses the same way.
    small = x[:100]
    body = {"inputs": [{"name": "x", "shape": [100, 1000], "datatype": "FP32", "data": small.reshape(-1).tolist()}]}
    for name, s in echoes.items():
        got = httpx.post(s.url + INFER, json=body, timeout=30).json()["outputs"]
        assert np.array_equal(np.array(got[0]["data"], np.float32), small.reshape(-1)) and got[1]["data"] == [name == "shared"], name


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """Fronts with room for two 4 MB tensors each, and a predictor that holds its input a while."""
    path = tmp_path_factory.mktemp("held")
    s = start(path, "shared.py:Held", "--fronts", "2", "--shared-memory-mb", "8", "--config", '{"delay": 0.4}')
    yield s
    stop(s)


def check(r: httpx.Response, value: float) -> bool:
    got = outputs(r)
    assert got["value"][0] == value and got["intact"][0], (value, got)
    assert got["writeable"][0]  # as a single process's arrays are
    return bool(got["shared"][0])


def test_many_concurrent_large_requests_keep_their_own_bytes(held) -> None:
    values = list(range(1, 25))
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda v: binary_infer(held.url, np.full(MB4, v, dtype=np.float32)), values))
    shared = [check(r, v) for r, v in zip(answers, values, strict=True)]
    assert any(shared)  # some through shared memory; those that found it full went through the socket, intact too


def test_two_model_processes_read_the_same_fronts_regions(tmp_path: Path) -> None:
    # A front's calls to either model process take slots of its one region (keys per link).
    server = start(tmp_path, "shared.py:Held", "--fronts", "2", "--model-processes", "2", "--config", '{"delay": 0.2}')
    try:
        values = list(range(1, 13))
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda v: binary_infer(server.url, np.full(MB4, v, dtype=np.float32)), values))
        assert all(check(r, v) for r, v in zip(answers, values, strict=True))  # each through shared memory, intact
        assert len({int(outputs(r)["pid"][0]) for r in answers}) == 2  # both model processes used
    finally:
        stop(server)


def test_cancelled_requests_free_their_slots_once_answered_and_nothing_is_reused_early(held) -> None:
    with ThreadPoolExecutor(4) as pool:
        gone = [pool.submit(binary_infer, held.url, np.full(MB4, 100 + k, dtype=np.float32), 0.25) for k in range(4)]
        for f in gone:
            with pytest.raises(httpx.TimeoutException):
                f.result()
        # While the model process still holds the cancelled requests' arrays, new ones must not overwrite them.
        answers = list(pool.map(lambda v: binary_infer(held.url, np.full(MB4, v, dtype=np.float32)), [200, 201, 202, 203]))
    for r, v in zip(answers, [200, 201, 202, 203], strict=True):
        check(r, v)
    assert not (held.log.parent / "corrupt.txt").exists()
    time.sleep(0.5)
    # Every slot came back: one at a time, each request finds room in its front's region.
    assert all(check(binary_infer(held.url, np.full(MB4, v, dtype=np.float32)), v) for v in range(300, 306))


def test_nothing_is_left_in_dev_shm_after_stop_or_a_killed_front(tmp_path: Path) -> None:
    before = shm_names()
    for kill in (False, True):
        server = start(tmp_path, "shared.py:Held", "--fronts", "2")
        try:
            assert check(binary_infer(server.url, np.full(MB4, 3, dtype=np.float32)), 3)
            model = int(outputs(binary_infer(server.url, np.full(MB4, 4, dtype=np.float32)))["pid"][0])
            processes = children(server.proc.pid)
            assert len(processes) == 3 and model in processes and all(maps_region(p) for p in processes)  # fronts and model process map regions
            if kill:
                os.kill(next(p for p in processes if p != model), signal.SIGKILL)
                assert server.proc.wait(timeout=30) == 1  # a dead front stops the pod
            else:
                server.proc.send_signal(signal.SIGTERM)
                assert server.proc.wait(timeout=30) == 0
            for p in processes:
                deadline = time.monotonic() + 10
                while Path(f"/proc/{p}").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not Path(f"/proc/{p}").exists()
        finally:
            stop(server)
        assert shm_names() == before


def test_without_memfd_the_fronts_serve_through_the_socket(tmp_path: Path) -> None:
    # A kernel or sandbox without memfd_create: made to fail in the server's processes (sitecustomize).
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import errno, os\n"
        "def refuse(*args):\n"
        "    raise OSError(errno.ENOSYS, 'Function not implemented')\n"
        "os.memfd_create = refuse\n"
    )
    server = start(tmp_path, "shared.py:Held", "--fronts", "2", env={"PYTHONPATH": f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    try:
        assert check(binary_infer(server.url, np.full(MB4, 5, dtype=np.float32)), 5) is False  # intact, through the socket
        assert "no shared memory for tensors (Function not implemented): they go through the fronts' links" in server.output()
    finally:
        stop(server)


def test_a_bad_shared_memory_size_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--predictor", f"{PREDICTORS / 'shared.py'}:Echo", "--model-dir", str(tmp_path),
         "--port", "0", "--fronts", "2", "--shared-memory-mb", "-5"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --shared-memory-mb / MLKIT_SHARED_MEMORY_MB must not be negative, got -5", proc.stderr


class Streams:
    """predict returns a generator that reads its input as it goes (until its last item)."""

    def predict(self, payload):
        def chunks():
            for k in range(1000):
                time.sleep(0.01)
                yield float(payload["x"][k])

        return chunks()


def test_a_stream_the_client_left_frees_its_slot_once_the_model_process_closed_it(region: tuple[Region, Mapped], tmp_path: Path) -> None:
    # The real model process's loop (ModelServer) over a socket pair: the front's cancel is confirmed
    # ("end") only after the generator, which may still read the input, is closed.
    from mlkit_runtime.model_process import ModelServer

    front_region, mapped = region
    front_sock, model_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = ModelServer(Settings.load({"predictor": "p.py:P", "model_dir": str(tmp_path)}), Streams(), [mapped])
    thread = threading.Thread(target=server.serve, args=([LinkEnd(model_sock)],))
    thread.start()

    async def main() -> None:
        link = ModelLink(front_sock, front_region)
        await link.open()
        chunks = await link.call("predict", {"x": np.arange(MB4, dtype=np.float32)})
        assert [await anext(chunks), await anext(chunks)] == [0.0, 1.0]
        assert len(front_region.held) == 1  # the generator still reads the front's memory
        await chunks.aclose()  # the client went away: "cancel"
        deadline = time.monotonic() + 5
        while front_region.held and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert front_region.held == {} and front_region.free == [(0, 16 << 20)]
        link.close()

    try:
        asyncio.run(main())
    finally:
        front_sock.close()
        thread.join(10)
        server.loop.call_soon_threadsafe(server.loop.stop)
        server.executor.shutdown(wait=False)
    assert not thread.is_alive()
