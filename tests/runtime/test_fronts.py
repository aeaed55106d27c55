"""Several HTTP front processes and one model process (runtime/fronts.py), real processes on loopback:
one copy of the model, admission for the pod, drain with the model process last, one metrics view,
the front count (runtime/cpus.py) and its setting. The other runtime suites run in this mode with
MLKIT_TEST_FRONTS=2 (tests/runtime/conftest.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mlkit_runtime.cpus import cgroup_cpus, fronts_for
from mlkit_runtime.devices import model_process_devices
from mlkit_runtime.settings import Settings, SettingsError
from tests.runtime.conftest import PREDICTORS, start, stop


def post_many(url: str, n: int, payload: dict) -> list[httpx.Response]:
    """n requests at once, each on its own connection, so that they spread over the fronts. Every client
    is made before any request leaves: making one (its TLS context) took up to 185 ms on the loaded
    2-core machine, so requests sent as their clients were ready could spread over more than the 1 s
    a request of the admission test holds its slot (that test failed once at load 15-17)."""
    ready = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as c:
            ready.wait(timeout=60)
            return c.post(url + "/predict", json=payload)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in\n{text}"
    return float(found.group(1))


def test_the_model_is_loaded_once_and_answers_every_front(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Counted", "--fronts", "3")
    try:
        answers = post_many(server.url, 24, {"sleep": 0.05})
        assert [r.status_code for r in answers] == [200] * 24
        pids = {r.json()["pid"] for r in answers}
        loads = (tmp_path / "loads.txt").read_text().split()
        assert len(loads) == 1, loads  # one copy of the model, not one per front
        assert pids == {int(loads[0])}
        assert max(r.json()["batch"] for r in answers) > 1  # batched in the model process, across connections
        text = server.output()
        assert re.search(r"serving with 3 front processes", text)
    finally:
        stop(server)


def test_admission_holds_for_the_pod_not_per_front(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Counted", "--fronts", "2", "--max-in-flight", "1", "--max-queue", "1")
    try:
        answers = post_many(server.url, 10, {"sleep": 1.0})
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 2 + [503] * 8, codes
        assert all(r.headers.get("retry-after") for r in answers if r.status_code == 503)
        scraped = httpx.get(server.url + "/metrics").text
        assert metric(scraped, "mlkit_requests_rejected_total") == 8  # counted by whichever front refused, summed
        assert metric(scraped, "mlkit_requests_in_flight") == 0
    finally:
        stop(server)


def test_metrics_are_one_view_of_the_pod(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Counted", "--fronts", "2")
    try:
        for _ in range(3):  # fresh connections, many at once: both fronts answer some
            assert {r.status_code for r in post_many(server.url, 8, {"sleep": 0.02})} == {200}
        for _ in range(5):  # any front's /metrics counts all 24 requests
            with httpx.Client() as c:
                scraped = c.get(server.url + "/metrics").text
            assert metric(scraped, 'mlkit_requests_total{route="/predict",status="200"}') == 24
            assert metric(scraped, "mlkit_batch_size_sum") == 24  # observed in the model process
            assert metric(scraped, 'mlkit_startup_phase_seconds{phase="fronts"}') >= 0
    finally:
        stop(server)


def test_drain_finishes_admitted_requests_and_the_model_process_exits_last(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Counted", "--fronts", "2", "--drain-delay-s", "0.5")
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(post_many, server.url, 1, {"sleep": 1.5}) for _ in range(4)]
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 503  # unready at once, still serving
        assert [f.result()[0].status_code for f in held] == [200] * 4
    assert server.proc.wait(timeout=30) == 0
    text = server.output()
    # Each front closes its link as its app shuts down, after its last answer; the model process goes after both.
    fronts_done = [m.end() for m in re.finditer(r"Waiting for application shutdown", text)]
    answers = [m.end() for m in re.finditer(r'"status":200', text)]
    model_done = text.index("all 2 fronts closed their links")
    assert len(fronts_done) == 2 and len(answers) == 4 and max(fronts_done + answers) < model_done, text
    assert "drained: 2 fronts, then the model process, exited" in text


def test_a_model_process_that_dies_stops_the_pod_with_exit_1(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Counted", "--fronts", "2")
    try:
        model_pid = int((tmp_path / "loads.txt").read_text().split()[0])
        os.kill(model_pid, signal.SIGKILL)  # as the kernel's OOM killer would
        assert server.proc.wait(timeout=30) == 1
        assert "the model process exited with -9 while serving; stopping the fronts" in server.output()
    finally:
        stop(server)


def test_a_predictor_that_cannot_load_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--predictor", f"{PREDICTORS / 'broken_import.py'}:Predictor",
         "--model-dir", str(tmp_path), "--port", "0", "--fronts", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["0", "65", "two", "-1", "2.5"])
def test_a_bad_front_count_is_one_line(value: str) -> None:
    with pytest.raises(SettingsError, match="MLKIT_FRONTS must be auto or a number from 1 to 64"):
        Settings.load({"predictor": "p.py:P", "fronts": value})


def test_fronts_need_a_realtime_api() -> None:
    with pytest.raises(SettingsError, match="realtime APIs only"):
        Settings.load({"predictor": "p.py:P", "fronts": "2", "mode": "async", "queue": "local", "results": "file:/tmp/r"})


@pytest.mark.parametrize(("cpus", "fronts"), [(0.25, 1), (1, 1), (1.5, 2), (2, 2), (3, 2), (4, 3), (8.5, 7), (65, 64), (100, 64)])
def test_fronts_follow_the_cpu_of_the_pod(cpus: float, fronts: int) -> None:
    assert fronts_for(cpus) == fronts


def test_the_cgroup_quota_is_read(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("250000 100000\n")
    assert cgroup_cpus(cpu_max) == 2.5
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpus(cpu_max) is None
    assert cgroup_cpus(tmp_path / "absent") is None


# One model process per device: CPU "devices" stand in for GPUs (CUDA_VISIBLE_DEVICES set for the pod).
DEVICES = {"CUDA_VISIBLE_DEVICES": "3,5"}


def test_one_model_process_per_device_each_pinned_and_both_used(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:OnDevice", "--fronts", "2", "--model-processes", "auto", env=DEVICES)
    try:
        answers = post_many(server.url, 32, {"sleep": 0.1})
        assert [r.status_code for r in answers] == [200] * 32
        loads = (tmp_path / "loads.txt").read_text().split()
        assert len(loads) == 2 and len(set(loads)) == 2, loads  # one copy per device, none per front
        pinned = {r.json()["pid"]: r.json()["device"] for r in answers}
        assert set(pinned) == {int(pid) for pid in loads}  # both used
        assert sorted(pinned.values()) == ["3", "5"]  # each sees its own device only
        assert "2 model processes" in server.output() and "pinned to CUDA_VISIBLE_DEVICES 3, 5" in server.output()
    finally:
        stop(server)


def test_with_several_model_processes_drain_ends_with_them(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:OnDevice", "--fronts", "2", "--model-processes", "2", "--drain-delay-s", "0.3", env=DEVICES)
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(post_many, server.url, 1, {"sleep": 1.5}) for _ in range(4)]
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        assert [f.result()[0].status_code for f in held] == [200] * 4
    assert server.proc.wait(timeout=30) == 0
    text = server.output()
    answers = [m.end() for m in re.finditer(r'"status":200', text)]
    models_done = [m.start() for m in re.finditer(r"all 2 fronts closed their links", text)]
    assert len(answers) == 4 and len(models_done) == 2 and max(answers) < min(models_done), text
    assert "drained: 2 fronts, then the model processes, exited" in text


def test_one_dying_model_process_of_several_stops_the_pod(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:OnDevice", "--fronts", "2", "--model-processes", "2", env=DEVICES)
    try:
        os.kill(int((tmp_path / "loads.txt").read_text().split()[1]), signal.SIGKILL)
        assert server.proc.wait(timeout=30) == 1
        assert re.search(r"model process mlkit-model-\d exited with -9 while serving; stopping the fronts", server.output())
    finally:
        stop(server)


@pytest.mark.parametrize(("setting", "env", "devices"), [
    ("1", {"CUDA_VISIBLE_DEVICES": "0,1"}, [None]),  # the default: one process sees every GPU (a model sharded across them)
    ("auto", {}, [None]),
    ("auto", {"CUDA_VISIBLE_DEVICES": "0"}, [None]),
    ("auto", {"CUDA_VISIBLE_DEVICES": "2,GPU-abc"}, ["2", "GPU-abc"]),
    ("auto", {"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b,GPU-c"}, ["0", "1", "2"]),  # the device plugin's: numbered from 0 inside
    ("auto", {"NVIDIA_VISIBLE_DEVICES": "all"}, [None]),
    ("auto", {"NVIDIA_VISIBLE_DEVICES": "void"}, [None]),
    ("auto", {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"}, [None]),  # hidden from CUDA on purpose
    ("3", {"CUDA_VISIBLE_DEVICES": "0,1"}, ["0", "1", "0"]),  # more processes than GPUs share them round-robin
    ("2", {}, [None, None]),  # CPU "devices"
])
def test_model_processes_follow_the_visible_devices(setting: str, env: dict, devices: list) -> None:
    assert model_process_devices(setting, env) == devices


@pytest.mark.parametrize("value", ["0", "65", "many", "-2"])
def test_a_bad_model_process_count_is_one_line_exit_2(value: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--predictor", f"{PREDICTORS / 'fronts.py'}:Counted", "--model-dir", str(tmp_path),
         "--port", "0", "--model-processes", value],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: --model-processes / MLKIT_MODEL_PROCESSES must be auto or a number from 1 to 64, got {value!r}"), proc.stderr


def test_fronts_log_start_up_once_and_the_predictors_own_traceback(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Raises", "--fronts", "3")
    try:
        r = httpx.post(server.url + "/predict", json={"x": 1}, timeout=30)
        assert r.status_code == 500
        time.sleep(0.3)
        text = server.output()
    finally:
        stop(server)
    assert text.count("startup: process") == 1 and text.count("ready in every front: batched in the model process") == 1, text
    assert "no batching" not in text  # a front's stand-in has no predict_batch; the model process batches
    # The front logs where the predictor raised (its frames, sent from the model process), not the link's plumbing.
    assert "(raised in the model process)" in text and 'fronts.py", line' in text and "in check" in text, text
    assert "model_link.py" not in text, text


def test_a_sync_batch_runs_in_the_thread_that_read_it_without_an_event_loop(tmp_path: Path) -> None:
    # Two threads take turns reading the links; the one that read a batch runs it, while the other
    # reads: no event loop, no pool, and no hand-off between threads for a lone request.
    server = start(tmp_path, "fronts.py:WhereItRuns", "--fronts", "2")
    try:
        answers = post_many(server.url, 16, {"sleep": 0.05})
        assert [r.status_code for r in answers] == [200] * 16
        assert {r.json()["thread"] for r in answers} <= {"MainThread", "mlkit-model"}
        assert max(r.json()["batch"] for r in answers) > 1  # still batched across connections and fronts
        # One request at a time: each is run by the thread that read it, and the turn to read passes to
        # the other thread while it runs, so lone requests are run by both (a hand-off to one model
        # thread ran them all there). Not strictly in turn: a request read before the thread that ran
        # the last one says it is done is left to that thread.
        with httpx.Client(base_url=server.url, timeout=30) as client:
            alone = [client.post("/predict", json={"sleep": 0.01}).json() for _ in range(6)]
        assert [a["batch"] for a in alone] == [1] * 6
        assert {a["thread"] for a in alone} == {"MainThread", "mlkit-model"}, alone
    finally:
        stop(server)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime


def test_a_model_process_pinned_to_one_cpu_polls_only_while_requests_come_close_together(tmp_path: Path) -> None:
    # Pinned to one CPU, the model process polls its links for up to a millisecond before it sleeps,
    # and only while the last message came within that time: batching and the threads' turns are as
    # without it, and once requests stop it sleeps (a poll that never ended would take the CPU whole).
    server = start(tmp_path, "fronts.py:PinnedWhereItRuns", "--fronts", "2")
    try:
        answers = post_many(server.url, 16, {"sleep": 0.05})
        assert [r.status_code for r in answers] == [200] * 16
        assert max(r.json()["batch"] for r in answers) > 1
        with httpx.Client(base_url=server.url, timeout=30) as client:
            alone = [client.post("/predict", json={}).json() for _ in range(40)]
        assert [a["batch"] for a in alone] == [1] * 40
        assert {a["thread"] for a in alone} == {"MainThread", "mlkit-model"}, alone
        pid = alone[0]["pid"]
        assert len(os.sched_getaffinity(pid)) == 1
        idle = cpu_seconds(pid)
        time.sleep(1.5)
        assert cpu_seconds(pid) - idle < 0.3  # asleep, not polling
    finally:
        stop(server)


def context_switches(pid: int) -> int:
    """Every thread's context switches so far (voluntary and not): each wake-up of a sleeping thread is one."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def test_a_model_process_on_one_cpu_reads_what_came_during_a_batch_after_it_and_sleeps_meanwhile(tmp_path: Path) -> None:
    # On one CPU, no thread of the model process wakes for a message while a batch runs (a reader that
    # did took that CPU from the forward, a context switch and a recv a message): what came is read
    # when the batch ends, and runs as the next batch. Eight requests come 40 ms apart while a batch
    # sleeps 1.2 s: they run as one batch of eight, and the model process's threads switched less than
    # once per request meanwhile (a reader waiting on the links switches twice per message).
    server = start(tmp_path, "fronts.py:PinnedWhereItRuns", "--fronts", "2", "--max-batch-size", "16")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            pid = client.post("/predict", json={}).json()["pid"]
        with ThreadPoolExecutor(9) as pool:
            first = pool.submit(lambda: httpx.post(server.url + "/predict", json={"sleep": 1.2}, timeout=30))
            time.sleep(0.3)  # the long batch runs
            before = context_switches(pid)
            later = []
            for _ in range(8):
                later.append(pool.submit(lambda: httpx.post(server.url + "/predict", json={}, timeout=30)))
                time.sleep(0.04)
            time.sleep(0.1)  # every message sent, the long batch still running
            switched = context_switches(pid) - before
            answers = [f.result() for f in later]
            assert first.result().json()["batch"] == 1
        assert [a.json()["batch"] for a in answers] == [8] * 8, [a.json() for a in answers]
        assert switched < 4, switched
    finally:
        stop(server)


def test_a_sync_predict_without_batching_still_runs_side_by_side(tmp_path: Path) -> None:
    server = start(tmp_path, "fronts.py:Alone", "--fronts", "2", "--max-in-flight", "8")
    try:
        began = time.monotonic()
        answers = post_many(server.url, 8, {"sleep": 1.0})
        took = time.monotonic() - began
        assert [r.status_code for r in answers] == [200] * 8
        assert took < 4, took  # one after another would take 8 s
        assert all(r.json()["thread"].startswith("predict") for r in answers)
    finally:
        stop(server)


def test_a_json_payload_crosses_as_its_body_and_anything_else_pickled() -> None:
    # A payload parsed from the request's JSON goes to the model process as the body's bytes, parsed again
    # there (cheaper than pickling the parsed value and unpickling it); any other object is pickled.
    import asyncio
    import socket

    from mlkit_runtime.model_link import LinkEnd, ModelLink
    from mlkit_runtime.payloads import json_source, parse_json

    body = b'{"x": [0.1, 2, 1e300, "\\u00e9t\\u00e9", null, true], "n": 12345678901234567890}'
    parsed = parse_json(body)
    front_end, model_end = socket.socketpair()
    model = LinkEnd(model_end)

    async def calls() -> list:
        link = ModelLink(front_end)
        await link.open()
        json_source.set((parsed, body))
        seen = []
        for payload in (parsed, {"x": [0.1]}):  # the request's payload, then another object
            answer = asyncio.ensure_future(link.call("predict", payload))
            message = await asyncio.to_thread(lambda: model.read()[0])
            seen.append(message)
            model.send((message[0], "ok", "done", 1))
            assert await answer == "done"
        link.close()
        return seen

    first, second = asyncio.run(calls())
    assert first[1:] == ("json", body)
    assert second[1:] == ("predict", {"x": [0.1]})
    model.close()


def test_a_json_payload_reaches_the_predictor_as_one_process_parses_it(tmp_path: Path) -> None:
    body = {"x": [0.1, 2, 1e300, "été", None, True, {"deep": [[1.5]]}], "n": 12345678901234567890}
    answers = []
    for fronts in ("1", "2"):
        server = start(tmp_path, "echo.py:Echo", "--fronts", fronts)
        try:
            answers.append(httpx.post(server.url + "/predict", json=body, timeout=30).json())
        finally:
            stop(server)
    assert answers[0] == answers[1] == {"echo": body}
