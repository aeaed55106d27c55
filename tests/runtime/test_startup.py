"""A predictor that cannot load stops the server before it is ready, with the file and the error."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.conftest import assert_one_line_error
from tests.runtime.conftest import FRONTS_ENV, PREDICTORS, start


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlkit_runtime", "--port", "0", *args], capture_output=True, text=True, timeout=timeout)


LOAD_FAILURES = [
    ("broken_import.py:Predictor", "broken_import.py: importing it failed: ModuleNotFoundError: No module named 'not_a_module_anyone_has' (line 1"),
    ("broken_syntax.py:Predictor", "broken_syntax.py: importing it failed: SyntaxError: expected ':' (line 2)"),
    ("echo.py:Nope", "echo.py: has no class 'Nope' (classes defined there: AsyncEcho, BatchEcho, BrokenInit, Echo, Fuzz, WrongBatch)"),
    ("echo.py:BrokenInit", "echo.py: BrokenInit(config, model_dir) failed: RuntimeError: weights are corrupt (line "),
    ("missing.py:Predictor", "missing.py: no such file"),
    ("broken_exit.py:Predictor", "broken_exit.py: importing it failed: SystemExit: 0 (line 3: sys.exit(0)"),
    ("no_such_package:Predictor", "no_such_package: importing it failed: ModuleNotFoundError: No module named"),
]


@pytest.mark.parametrize("predictor, message", LOAD_FAILURES)
def test_load_failures_are_one_line_and_exit_1(tmp_path, predictor, message):
    result = run("--predictor", f"{PREDICTORS / predictor}", "--model-dir", str(tmp_path))
    assert_one_line_error(result, message, code=1)
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip().removeprefix('error: ')}"], result.stderr
    assert "Application startup" not in result.stderr


def test_a_failing_warmup_is_one_error_line_and_exit_1(tmp_path):
    result = run("--predictor", f"{PREDICTORS}/broken_warmup.py:Predictor", "--model-dir", str(tmp_path))
    assert_one_line_error(result, "broken_warmup.py: warmup() failed: OSError: the GPU is not there (line 12: raise OSError(\"the GPU is not there\"))", code=1)
    assert [line for line in result.stderr.splitlines() if "the GPU is not there" in line] == [result.stderr.splitlines()[-1]]
    assert len(result.stderr) < 1000, result.stderr


@pytest.mark.parametrize("predictor", ["echo.py:BrokenInit", "broken_warmup.py:Predictor"])
def test_debug_shows_the_traceback(tmp_path, predictor):
    for args in (["--debug"], []):
        result = subprocess.run(
            [sys.executable, "-m", "mlkit_runtime", "--port", "0", "--predictor", f"{PREDICTORS / predictor}", "--model-dir", str(tmp_path), *args],
            capture_output=True, text=True, timeout=60, env=os.environ | ({"MLKIT_DEBUG": "true"} if not args else {}),
        )
        assert result.returncode == 1 and "Traceback" in result.stderr and "raise" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no predictor given: pass --predictor"),
        (["--predictor", "p.py:P", "--max-batch-size", "lots"], "--max-batch-size: 'lots' is not a whole number"),
        (["--predictor", "p.py:P", "--config", "{bad"], "--config / MLKIT_CONFIG: not valid JSON"),
        (["--predictor", "p.py:P", "--config", "[1]"], "must be a JSON object"),
        (["--predictor", "p.py:P", "--max-in-flight", "0"], "--max-in-flight / MLKIT_MAX_IN_FLIGHT must be at least 1"),
    ],
)
def test_bad_settings_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2 and message in result.stderr


def test_settings_come_from_the_environment_and_flags_win():
    from mlkit_runtime.settings import Settings

    s = Settings.load(
        {"max_queue": "5"}, environ={"MLKIT_PREDICTOR": "p.py:P", "MLKIT_MAX_QUEUE": "9", "MLKIT_MAX_WAIT_MS": "2.5", "MLKIT_ACCESS_LOG": "false"}
    )
    assert (s.predictor, s.max_queue, s.max_wait_ms, s.access_log) == ("p.py:P", 5, 2.5, False)
    with pytest.raises(Exception, match="MLKIT_MAX_QUEUE: 'x' is not a whole number"):
        Settings.load(environ={"MLKIT_PREDICTOR": "p.py:P", "MLKIT_MAX_QUEUE": "x"})


def test_runtime_never_imports_mlkit():
    code = "import sys, mlkit_runtime.server, mlkit_runtime.app; print(any(m == 'mlkit' or m.startswith('mlkit.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


AFTER_READY = f"""
import asyncio, sys, time
import mlkit_runtime.server
from mlkit_runtime.app import create_app
from mlkit_runtime.settings import Settings
app = create_app(Settings(predictor="{PREDICTORS / 'echo.py'}:Echo"))
runtime = app.state.runtime
runtime.load()
print("numpy before ready:", "numpy" in sys.modules)
asyncio.run(runtime.start())
deadline = time.monotonic() + 20
while "mlkit_runtime.oip_messages" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)
print("numpy after ready:", "numpy" in sys.modules and "mlkit_runtime.oip_messages" in sys.modules)
"""


def test_numpy_waits_until_after_ready():
    """Nothing before ready that can come after (issue: cold start cut): a predictor that does not use numpy
    starts without it (about 0.1 s), and the runtime imports the OIP tensor code once it is ready."""
    out = subprocess.run([sys.executable, "-c", AFTER_READY], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == ["numpy before ready: False", "numpy after ready: True"], out.stdout + out.stderr


def startup_gauges(metrics: str) -> dict[str, float]:
    found = {m.group(1): float(m.group(2)) for m in re.finditer(r'^mlkit_startup_phase_seconds\{phase="(\w+)"\} (\S+)$', metrics, re.M)}
    total = re.search(r"^mlkit_startup_seconds (\S+)$", metrics, re.M)
    if total:
        found["total"] = float(total.group(1))
    return found


def test_start_phases_are_measured_in_metrics_and_one_log_line(tmp_path):
    """A predictor whose import, constructor and warm-up sleep 0.4, 0.3 and 0.2 s: each phase shows at
    least that, and not much more; the whole covers them all and the interpreter's start before."""
    server = start(tmp_path, "slow_start.py:Predictor")
    try:
        phases = startup_gauges(httpx.get(server.url + "/metrics").text)
    finally:
        server.proc.terminate()
        server.proc.wait(10)
    fronts = {"fronts"} if FRONTS_ENV else set()  # with fronts (runtime/fronts.py), their own start is a phase too
    assert set(phases) == {"process", "imports", "construct", "warmup", "serve", "total"} | fronts, phases
    for phase, slept in {"imports": 0.4, "construct": 0.3, "warmup": 0.2}.items():
        assert slept <= phases[phase] < slept + 1.5, (phase, phases)
    assert 0 < phases["process"] < 30 and phases["serve"] < 5
    whole = sum(v for k, v in phases.items() if k != "total")
    if FRONTS_ENV:  # each gauge is the slowest process's: the slowest front's whole is at most the sum of the slowest phases
        assert phases["total"] <= whole + 1e-6
    else:
        assert phases["total"] == pytest.approx(whole, abs=1e-6)
    lines = [line for line in server.output().splitlines() if "startup: " in line]
    assert len(lines) == 1, server.output()  # with fronts too: the first front logs it, not every front
    fronts_phase = r"fronts \d+\.\d{3}s, " if FRONTS_ENV else ""
    expected = (
        rf"startup: process \d+\.\d{{3}}s, imports 0\.4\d\ds, construct 0\.3\d\ds, warmup 0\.2\d\ds, {fronts_phase}serve \d+\.\d{{3}}s; "
        r"ready \d+\.\d{3}s after"
    )
    assert re.search(expected, lines[0]), lines[0]


def test_process_age_reads_the_kernels_start_time():
    from mlkit_runtime.startup import process_age

    # This test process has run for a while; a child started now is young.
    assert process_age() > 0.1
    code = "from mlkit_runtime.startup import process_age; print(process_age())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert 0 < float(child.stdout) < 10, child.stderr
