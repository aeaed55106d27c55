"""A predictor that cannot load stops the server before it is ready, with the file and the error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.runtime.conftest import PREDICTORS


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlkit_runtime", "--port", "0", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "predictor, message",
    [
        ("broken_import.py:Predictor", "broken_import.py: importing it failed: ModuleNotFoundError: No module named 'not_a_module_anyone_has' (line 1"),
        ("echo.py:Nope", "echo.py: has no class 'Nope' (classes defined there: AsyncEcho, BatchEcho, BrokenInit, Echo, Fuzz, WrongBatch)"),
        ("echo.py:BrokenInit", "echo.py: BrokenInit(config, model_dir) failed: RuntimeError: weights are corrupt"),
        ("missing.py:Predictor", "missing.py: no such file"),
    ],
)
def test_load_failures_exit_non_zero_and_name_the_file(tmp_path, predictor, message):
    result = run("--predictor", f"{PREDICTORS / predictor}", "--model-dir", str(tmp_path))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Application startup complete" not in result.stderr


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

    s = Settings.load({"max_queue": "5"}, environ={"MLKIT_PREDICTOR": "p.py:P", "MLKIT_MAX_QUEUE": "9", "MLKIT_MAX_WAIT_MS": "2.5", "MLKIT_ACCESS_LOG": "false"})
    assert (s.predictor, s.max_queue, s.max_wait_ms, s.access_log) == ("p.py:P", 5, 2.5, False)
    with pytest.raises(Exception, match="MLKIT_MAX_QUEUE: 'x' is not a whole number"):
        Settings.load(environ={"MLKIT_PREDICTOR": "p.py:P", "MLKIT_MAX_QUEUE": "x"})


def test_runtime_never_imports_mlkit():
    code = "import sys, mlkit_runtime.server, mlkit_runtime.app; print(any(m == 'mlkit' or m.startswith('mlkit.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
