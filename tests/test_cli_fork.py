"""tests/cli_fork.py, which runs the suite's `mlkit ARGS` in forks of a process that has imported the kit, gives
a command what `python -m` gives it: the same output, errors and exit status, a program and mlkit alike."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import cli_fork
from tests.conftest import REPO


@pytest.fixture(scope="module")
def server():
    made = cli_fork.ForkServer()
    yield made
    made.close()


def fresh(module: str, args: list[str], cwd: Path, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=60)


def probe_env() -> dict[str, str]:
    return dict(os.environ) | {"PROBE": "set by the test"}


@pytest.fixture
def probe(tmp_path) -> Path:
    """tests/forked_probe.py as a top-level module in a folder of its own: `python -m` finds it only because that
    folder is the working folder (sys.path[0]), which the fork must make it too."""
    (tmp_path / "probe_module.py").write_text((REPO / "tests/forked_probe.py").read_text())
    return tmp_path


@pytest.mark.parametrize(
    ("args", "input"),
    [
        (["exit", "0"], None),
        (["exit", "3"], None),
        (["exit-message"], None),
        (["echo"], "line one\r\nline two\n"),
        (["echo"], None),
        (["where", "a b", "--flag"], "stdin text"),
        (["child"], None),
        (["shutdown"], None),
        (["signal"], None),
    ],
)
def test_a_forked_program_ends_as_a_fresh_one(server, args, input, probe):
    forked = server.run(args, probe, probe_env(), input, timeout=60, module="probe_module")
    alone = fresh("probe_module", args, probe, probe_env(), input)
    assert (forked.returncode, forked.stdout, forked.stderr) == (alone.returncode, alone.stdout, alone.stderr)


def test_an_uncaught_exception_is_a_traceback_and_exit_1_both_ways(server, probe):
    forked = server.run(["raise"], probe, probe_env(), None, timeout=60, module="probe_module")
    alone = fresh("probe_module", ["raise"], probe, probe_env())
    assert forked.returncode == alone.returncode == 1
    # The frames above the program's differ (runpy called from the server, not from the interpreter's start).
    for result in (forked, alone):
        assert result.stderr.startswith("Traceback (most recent call last):\n") and result.stderr.endswith("ValueError: boom\n")


def test_a_command_past_its_timeout_is_killed_and_says_so(server, probe):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(["sleep", "30"], probe, probe_env(), None, timeout=1, module="probe_module")
    assert time.monotonic() - started < 10
    # The next command still runs (the server is not held by the killed one).
    assert server.run(["exit", "4"], probe, probe_env(), None, timeout=60, module="probe_module").returncode == 4


def test_a_forked_command_counts_its_cpu(server, probe):
    before = cli_fork.children_cpu
    server.run(["child"], probe, probe_env(), None, timeout=60, module="probe_module")
    assert cli_fork.children_cpu > before


@pytest.mark.parametrize(
    ("args", "folder", "input"),
    [
        (["--version"], ".", None),
        (["validate"], "proj", None),
        (["render", "--check"], "proj", None),
        (["nonsense"], ".", None),
        (["init", "proj"], ".", None),  # exists already: one line, exit 1
        (["predict", "sentiment", "-"], "proj", "{not json"),
        (["validate"], "broken", None),
    ],
)
def test_mlkit_answers_the_same_forked_and_fresh(server, project, args, folder, input):
    proj = project("sentiment")
    (proj.parent / "broken").mkdir()
    (proj.parent / "broken" / "mlkit.yaml").write_text("project: [unclosed\n")
    cwd = proj.parent / folder
    forked = server.run(args, cwd, dict(os.environ), input, timeout=120)
    alone = fresh("mlkit", args, cwd, dict(os.environ), input)
    assert (forked.returncode, forked.stdout, forked.stderr) == (alone.returncode, alone.stdout, alone.stderr)


def test_what_start_up_decides_runs_fresh(tmp_path):
    """PYTHONPATH is read once, as an interpreter starts: a call that sets it (a test's fake module) cannot be a
    fork of the server, nor can `mlkit serve` (it may exec an engine); other calls are."""
    if not cli_fork.ENABLED:
        pytest.skip("MLKIT_TEST_CLI_FORK=0: every call runs fresh")
    cli_fork.run(("--version",), cwd=tmp_path, env=dict(os.environ), input=None, timeout=60)  # the server is up
    before = cli_fork.forked
    assert cli_fork.run(("--version",), cwd=tmp_path, env=dict(os.environ) | {"PYTHONPATH": str(tmp_path)}, input=None, timeout=60).returncode == 0
    assert cli_fork.run(("serve", "--port", "nope"), cwd=tmp_path, env=dict(os.environ), input=None, timeout=60).returncode == 2
    assert cli_fork.forked == before
    assert cli_fork.run(("--version",), cwd=tmp_path, env=dict(os.environ), input=None, timeout=60).returncode == 0
    assert cli_fork.forked == before + 1
