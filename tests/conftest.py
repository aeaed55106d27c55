"""Shared helpers: run the real `mlkit` CLI in a subprocess, find the kit's examples."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
# Examples that run only under `mlkit serve`, which the golden, validate, checkov and pod-contract tests leave out: none now.
SERVE_ONLY_EXAMPLES: set[str] = set()
ALL_EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "mlkit.yaml").is_file())
EXAMPLE_NAMES = [name for name in ALL_EXAMPLE_NAMES if name not in SERVE_ONLY_EXAMPLES]


def mlkit(*args: str, cwd: Path, env: dict | None = None, input: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m mlkit ARGS` as a user would, capturing stdout and stderr separately: in a process forked
    from one that has imported the kit already (tests/cli_fork.py says what that keeps and why)."""
    from tests import cli_fork

    return cli_fork.run(args, cwd=cwd, env=os.environ | (env or {}), input=input, timeout=timeout)


@pytest.fixture
def project(tmp_path: Path):
    """A fresh project made by `mlkit init` from an example; call it with the example's name."""

    def make(example: str = "sentiment") -> Path:
        result = mlkit("init", "proj", "--example", example, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return tmp_path / "proj"

    return make


def cloud_of(example: str) -> str:
    return "gcp" if "cloud: gcp" in (EXAMPLES / example / "mlkit.yaml").read_text() else "aws"


PROVIDER = {"aws": "aws", "gcp": "google"}


def require_provider(mirror: Path, cloud: str) -> None:
    """Skip, saying why, when the mirror lacks the cloud's provider (google cannot be had on the CI machines)."""
    if not (mirror / "registry.terraform.io" / "hashicorp" / PROVIDER[cloud]).is_dir():
        pytest.skip(f"{mirror} holds no registry.terraform.io/hashicorp/{PROVIDER[cloud]}: terraform validate of {cloud} stacks needs it")


@pytest.fixture(scope="session")
def tf_mirror() -> Path:
    """The filesystem mirror of terraform providers, from MLKIT_TF_PROVIDER_MIRROR."""
    value = os.environ.get("MLKIT_TF_PROVIDER_MIRROR")
    if not value:
        pytest.skip("MLKIT_TF_PROVIDER_MIRROR is not set: no local provider mirror to run terraform validate/apply with")
    path = Path(value)
    if not (path / "registry.terraform.io").is_dir():
        pytest.skip(f"MLKIT_TF_PROVIDER_MIRROR={value} holds no registry.terraform.io providers")
    return path


@pytest.fixture(scope="session")
def tf_env(tf_mirror: Path, tmp_path_factory) -> dict[str, str]:
    """Environment for terraform that installs providers from the mirror only (no network here)."""
    import shutil

    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    config = tmp_path_factory.mktemp("tfrc") / "terraform.rc"
    config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{tf_mirror}"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }}\n}}\n'
    )
    cache = tmp_path_factory.mktemp("plugin-cache")
    # GOGC=off with GOMEMLIMIT=1GiB: terraform and the aws provider (both Go) collect garbage only when a
    # process's heap nears 1 GiB. Loading the provider's schema, which every validate, plan and apply does,
    # allocates heavily: `terraform validate` of a cluster stack took 3.1 CPU-s with Go's default, 2.5 at
    # GOGC=400 and 2.3 with no collection below the limit (three runs each, alternated; 660 MB at its peak
    # against 370), and terraform is most of the moto end-to-end tests' CPU (21 of 30 CPU-s in one). The
    # limit keeps the seven workers' terraform processes within the machine's memory. Collection only,
    # nothing terraform does or decides changes; users' terraform keeps their own setting.
    return {"TF_CLI_CONFIG_FILE": str(config), "TF_PLUGIN_CACHE_DIR": str(cache), "GOGC": os.environ.get("GOGC", "off"),
            "GOMEMLIMIT": os.environ.get("GOMEMLIMIT", "1GiB")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(args: list[str], log_path: Path, env: dict | None = None):
    """Start a stand-in server (`python -m ...`) that listens on a free 127.0.0.1 port; yield the port, stop it after."""
    port = free_port()
    log = open(log_path, "w")
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # for the stand-ins under tests/ (tests/moto_server.py)
    proc = subprocess.Popen([sys.executable, "-m", *[a.replace("{port}", str(port)) for a in args]], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"{args[0]} did not start; see {log_path}")
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # A stand-in's own exit is not under test: a moto server that holds a stack's state takes a CPU-second
            # or two to tear down, which on a loaded 2-core machine (load 16) ran past 10 s and errored six of the eight e2e tests at teardown.
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def moto(tmp_path):
    """A moto server on 127.0.0.1 standing in for AWS; point boto3 and terraform at it with aws_env()."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    env = os.environ | {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    with local_server(["tests.moto_server", "-H", "127.0.0.1", "-p", "{port}"], tmp_path / "moto.log", env) as port:
        yield f"http://127.0.0.1:{port}"


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def k8s():
    """A local Kubernetes API (kmock's in-memory emulator, see tests/cluster/emulator.py) on 127.0.0.1."""
    from tests.cluster.emulator import start

    running, shutdown = start()
    yield running
    shutdown()


def emulator_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig whose context `emulator` (what specs name in `cluster.existing.context`) reaches the `k8s` emulator."""
    import yaml

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
    }))
    return path


def tree_snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under root (not following links): relative path -> (kind, content or link target)."""
    snap: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            snap[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            snap[rel] = ("dir", "")
        else:
            snap[rel] = ("file", path.read_bytes())
    return snap


class Sentinel:
    """A tree beside the project that no mlkit command may touch; `assert_untouched()` compares it."""

    def __init__(self, root: Path):
        self.root = root
        (root / "secrets").mkdir(parents=True)
        (root / "secrets/id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n")
        (root / "notes.txt").write_text("outside the project\n")
        (root / "infra/terraform/cluster").mkdir(parents=True)
        (root / "infra/terraform/cluster/main.tf").write_text("# someone else's stack\n")
        self.before = tree_snapshot(root)

    def assert_untouched(self) -> None:
        after = tree_snapshot(self.root)
        assert after == self.before, f"mlkit changed files outside the project: {sorted(set(after.items()) ^ set(self.before.items()))}"


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    """A tree at tmp_path/outside, beside a project made under tmp_path: hostile-input tests point
    links and paths at it and check afterwards that nothing there was written, deleted or truncated."""
    return Sentinel(tmp_path / "outside")


# What a leaked traceback or a raw exception looks like on a line of its own.
_TRACEBACK_LINE = re.compile(
    r'^\s*(Traceback \(most recent call last\)|File ".*", line \d+|raise\b|\^+\s*$)'
    r"|^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)(: |$)"
)
SHORT_BLOCK = 20


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int = 1) -> None:
    """A user error as the contract says: the exit code, and in stderr exactly one line that starts with
    `error`, every fragment in it (or in the list under it), no traceback anywhere. After it only a
    short indented list may follow (files a merge left conflicted); a message with a newline prints as `error:` and then one line. Lines
    before it (progress) are allowed, but none may look like a traceback frame or a raised exception."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    # A confirmation prompt ends without a newline: on a terminal the user's answer supplies it.
    stderr = re.sub(r"(\[y/N\]: ?)", "\\1\n", result.stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error")]
    assert len(starts) == 1, f"want exactly one line starting with 'error', got {len(starts)}: {result.stderr!r}"
    block = lines[starts[0]:]
    if block[0].rstrip() == "error:":  # a message with a newline: `error:`, then its first line
        block = [block[0] + " " + block[1].strip(), *block[2:]] if len(block) > 1 else block
    rest = block[1:]
    assert all(line.startswith("  ") for line in rest) and len(rest) <= SHORT_BLOCK, f"more than one error line: {result.stderr!r}"
    shaped = [line for line in lines if _TRACEBACK_LINE.search(line)]
    assert not shaped, f"traceback-shaped lines in stderr: {shaped}"
    for fragment in fragments:  # in the error or the list under it, not in what came before
        assert fragment in "\n".join(block), (fragment, block)


@pytest.fixture(scope="session")
def scraped_runtime(tmp_path_factory):
    """`mlkit serve` of the sentiment example scraped by a real Prometheus (tests/scraped.py), one for the session."""
    import shutil

    from tests import scraped

    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.skip("no prometheus binary on PATH (Debian: apt-get install prometheus; scripts/setup.sh installs it as root)")
    running = scraped.start(prometheus_bin, tmp_path_factory.mktemp("scraped"))
    yield running
    running.close()


# The API key of the session's one llm example server (tests that read from it share it).
LLM_KEY = "test-key-123"


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """`mlkit serve chat` of the llm example with the key LLM_KEY, one for the session (loading torch and
    the weights takes 20 s): `.url`, and `.log` (its stdout and stderr). Tests only read from it; they
    carry the `llm` xdist group (see pytest_collection_modifyitems) so that one worker starts it once."""
    from tests.runtime.conftest import HAS_LLM_WEIGHTS, LLM_WEIGHTS, serving_llm_example

    if not HAS_LLM_WEIGHTS:
        pytest.skip(LLM_WEIGHTS)
    root = tmp_path_factory.mktemp("llm")
    with serving_llm_example(root, LLM_KEY) as url:
        yield LlmServer(url, root / "serve.log")


@dataclasses.dataclass(frozen=True)
class LlmServer:
    url: str
    log: Path


# --- Where the suite's CPU goes (MLKIT_TEST_CPU=FILE) -------------------------------------------------
# Wall time on a shared 2-core machine says little about what a test costs: one that sleeps and one that
# burns both cores can take as long. With MLKIT_TEST_CPU set, every test appends one JSON line to that file:
# its wall seconds and the CPU seconds of this process and of the child processes it waited for (servers,
# the CLI, terraform), setup and teardown included (a module fixture's teardown counts to its last test).
# Workers append to the same file (lines are short writes in append mode). scripts/test.sh sets it for each
# phase and tests/cpu_report.py sums it after the phase.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    path = os.environ.get("MLKIT_TEST_CPU")
    if not path:
        yield
        return
    import json
    import resource

    from tests import cli_fork

    def cpu() -> tuple[float, float]:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime + cli_fork.children_cpu

    wall, (own, kids) = time.monotonic(), cpu()
    yield
    own_after, kids_after = cpu()
    line = {"test": item.nodeid, "wall_s": round(time.monotonic() - wall, 2), "cpu_s": round(own_after - own, 2),
            "children_cpu_s": round(kids_after - kids, 2), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "end": round(time.time(), 1)}
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


# --- How the suite runs in parallel (scripts/test.sh) -------------------------------------------------
# Phase one runs `-m "not serial"` on several xdist workers; phase two runs `-m serial` alone, so that
# nothing else competes for the CPU while a test times, loads or measures the machine. A test is serial
# when its file is one of SERIAL_FILES (the overload and drain under load) or its name
# says it times a running server (SERIAL_NAME, in SERVER_DIRS). Everything else must hold up beside other tests: ports are ephemeral,
# paths are per-test temporary folders, session fixtures are per worker.
SERIAL_FILES = ("tests/runtime/test_load.py",)
# Words in a test's function name that say it times or loads a running server (tests/runtime, commands,
# cluster, deploy start real processes; a render or spec test named "drain" or "timeout" checks a field).
SERIAL_NAME = re.compile(
    r"(^|_)(drain|drains|overload|overloaded|under_load|memory|leak|leaks|latency|slow|slowly|timeout|timeouts|sigterm|held"
    r"|seconds|deadline|stall|stalls|percentile|percentiles)(_|$)"
)
SERVER_DIRS = ("tests/runtime/", "tests/commands/", "tests/cluster/", "tests/deploy/")
# Tests that assert a duration although their names do not say so (found by grepping the asserts), by
# function or by test id.
SERIAL_TESTS = {
    # `mlkit bench` measures a replica and its assertions are about what it measured (a known cost's
    # capacity, a rate over it, the quick mode's length, a recommendation in about a minute); its bad-input
    # tests (one line, exit 1) and tests/bench/'s unit tests check no speed and run in phase one.
    "tests/commands/test_bench.py::test_three_runs_of_a_known_cost_agree",
    "tests/commands/test_bench.py::test_a_rate_over_what_a_replica_serves_fails_however_short_the_windows",
    "tests/commands/test_bench.py::test_quick_is_quick_and_says_it_is_rough",
    "tests/commands/test_bench.py::test_sentiment_prints_a_recommendation_in_about_a_minute",
    # The benchmark scripts' smoke tests check that each runs and prints its table, not its figures (a
    # loaded machine says nothing about speed: tests/test_benchmarks.py), so they run in phase one; the
    # quick start reinstalls mlkit into the .venv every other test imports from, so it runs alone.
    "tests/test_benchmarks.py::test_quickstart_ends_with_a_served_prediction",
    "tests/runtime/test_batching.py::test_a_lone_request_does_not_wait_for_a_batch_that_cannot_fill",
    "tests/runtime/test_hostile.py::test_deep_data_costs_milliseconds",
    "tests/runtime/test_hostile.py::test_a_hundred_thousand_instances_are_refused_before_the_fan_out",
    "tests/runtime/test_hostile.py::test_limits_follow_the_flags",
    "tests/runtime/test_openai_routes.py::test_token_metrics_and_access_log",
    "tests/spec/test_hostile.py::test_billion_laughs_fails_fast",
    "tests/spec/test_yamlsafe.py::test_a_billion_laughs_is_refused_at_its_line_fast_and_small",
    # the harness waits at most STARTUP_CAP_S for torch, transformers and the weights to load (tests/deploy/kubelet.py)
    "tests/deploy/test_pod_contract.py::test_every_api_serves_as_its_pod_is_rendered[llm]",
}
# Test files that use one session-wide server are kept on one worker (pytest_xdist_make_scheduler), so that
# the server starts once; every other file is a group of its own, so that a module's fixtures are made once.
SHARED_SERVERS = {"llm_server": "llm", "scraped_runtime": "scraped"}
# The moto end-to-end tests (marked `e2e`) spend most of a minute or two waiting on the aws provider's own
# polls (an S3 lifecycle configuration alone: about 55 s of GETs 5 s apart until three answers agree; a KMS
# key, a VPC: 10 s each), not on the CPU. scripts/test.sh runs them in a phase of their own beside the
# parallel phase, on their own workers, so that the waits overlap with other tests' work; it collects them
# from E2E_DIR only (collecting the whole tree again costs each worker 13 CPU-seconds), so an `e2e` test
# elsewhere stops the run. Each makes its own moto server and stack (no module fixtures), so each is a
# group of its own.
E2E_DIR = "tests/terraform/"
E2E_FILES = ("tests/terraform/test_e2e_moto", "tests/terraform/test_batch_access_moto.py")
# Files whose tests share no module fixtures and take minutes each (the 1,000-request async runs, one per
# cloud) or tens of seconds each (the benchmark scripts' smoke tests): each test, parameters included, is a
# group of its own, so that two of them run on two workers.
SPLIT_FILES = ("tests/runtime/test_async_clouds.py", "tests/test_benchmarks.py")
# Rough seconds of the longest groups (durations of a whole CI run on the 2-core machine, 2026-12-06): the
# scheduler hands these out first, longest first, so that none starts last and runs alone at the end. Only
# the order depends on them; a stale figure costs time, never a test. Other groups follow, larger first.
EXPECTED_SECONDS = {
    "tests/terraform/test_e2e_moto_karpenter.py::test_karpenter_stack_applies_replans_clean_and_destroys": 150,
    "tests/terraform/test_e2e_moto.py::test_apply_replan_destroy": 140,
    "tests/terraform/test_e2e_moto_async.py::test_async_stack_applies_its_queue_lifecycle_and_grants_replans_clean_and_destroys": 130,
    "tests/terraform/test_e2e_moto_automode.py::test_auto_mode_stack_applies_replans_clean_and_destroys": 125,
    "tests/terraform/test_e2e_moto_automode.py::test_moving_from_karpenter_to_auto_mode_keeps_karpenter_until_its_nodes_are_gone": 90,
    "tests/terraform/test_e2e_moto_karpenter.py::test_moving_from_node_groups_to_karpenter_keeps_the_old_groups_until_the_pods_moved": 82,
    "tests/terraform/test_e2e_moto_automode.py::test_moving_from_node_groups_to_auto_mode_turns_it_on_in_place_and_keeps_the_old_groups": 81,
    "tests/terraform/test_batch_access_moto.py::test_the_batch_role_writes_its_job_prefix_and_nothing_else": 67,
    "tests/terraform/test_e2e_moto_upgrade.py::test_the_previous_releases_async_stack_upgrades_moving_the_fronts_role_without_replacing_it": 150,
    "tests/runtime/test_async_clouds.py::test_every_request_completes_once_through_killed_and_stopped_workers[gcp]": 180,
    "tests/runtime/test_async_clouds.py::test_every_request_completes_once_through_killed_and_stopped_workers[aws]": 120,
    "llm": 80,
    "tests/deploy/test_pod_contract.py": 95,  # the llm image's venv included (about 40 s)
    # Two files of pods that started last and ended phase one with the other workers idle (2026-12-07: 81 s
    # and 9 s, the phase's last two minutes 81% and 30% busy).
    "tests/deploy/test_pod_contract_async.py": 80,
    "tests/runtime/test_async_identities.py": 10,
    # The benchmark scripts' smoke tests, one group each: ranked by their count of tests (one), they came
    # last and ran in the phase's final minute with a core idle (2026-12-07: 61% busy).
    "tests/test_benchmarks.py::test_fronts_alternates_the_modes_with_the_bare_forward_between_them": 30,
    "tests/test_benchmarks.py::test_serving_breakdown_runs_a_round": 29,
    "tests/test_benchmarks.py::test_llm_bench_runs_both_paths_at_two_concurrencies": 22,
    "tests/test_benchmarks.py::test_serving_run_loads_the_runtime_with_one_model": 18,
    "tests/test_benchmarks.py::test_async_vs_realtime_alternates_both_paths[moto]": 16,
    "tests/test_benchmarks.py::test_async_vs_realtime_alternates_both_paths[local]": 11,
    "tests/test_benchmarks.py::test_async_vs_realtime_runs_a_baselines_code_in_the_same_round": 16,
    "tests/test_benchmarks.py::test_async_breakdown_times_each_stage_and_both_paths": 8,
}


def serial(item: pytest.Item) -> bool:
    return serial_test(item.nodeid.split("::", 1)[0], getattr(item, "originalname", item.name)) or item.nodeid in SERIAL_TESTS


def serial_test(path: str, name: str) -> bool:
    """The rules for the test function `name` (without parameters) of the file `path`, relative to the repository."""
    if path.startswith(SERIAL_FILES) or f"{path}::{name}" in SERIAL_TESTS:
        return True
    return path.startswith(SERVER_DIRS) and bool(SERIAL_NAME.search(name))


def may_hold_serial(path: Path) -> bool:
    """Whether a test file can hold a test that serial() marks: the same rules over the test functions its
    text defines, and SERIAL_TESTS' ids with parameters."""
    rel = path.resolve().relative_to(REPO).as_posix()
    return any(test.startswith(rel + "::") for test in SERIAL_TESTS) or any(
        serial_test(rel, name) for name in re.findall(r"def (test_\w+)\(", path.read_text()))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m serial` alone (scripts/test.sh's serial phase) a test file that cannot hold a serial test is
    not imported: collecting all of the suite's 2,400 tests to run 25 cost that phase 6 to 8 s of its wall
    (one process, the machine otherwise idle). A file the rules cannot place is collected as usual."""
    if config.option.markexpr != "serial" or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    try:
        return not may_hold_serial(collection_path)
    except (OSError, ValueError):  # outside the repository, unreadable: collect it and let the marks decide
        return None


def pytest_configure(config: pytest.Config) -> None:
    if lost := sorted(t for t in SERIAL_TESTS if f"def {t.split('::')[1].split('[')[0]}(" not in (REPO / t.split("::")[0]).read_text()):
        raise pytest.UsageError(f"tests/conftest.py SERIAL_TESTS names tests that are not there (renamed?): {lost}")
    if stale := sorted(group for group in EXPECTED_SECONDS if not expected_group_exists(group)):
        raise pytest.UsageError(f"tests/conftest.py EXPECTED_SECONDS names groups that are not there (renamed?): {stale}")


def expected_group_exists(group: str) -> bool:
    """Whether an EXPECTED_SECONDS key is still a group: a shared server's, a test file, or a test in an e2e file."""
    if group in SHARED_SERVERS.values():
        return True
    path, _, name = group.partition("::")
    return (REPO / path).is_file() and (not name or f"def {name.split('[', 1)[0]}(" in (REPO / path).read_text())


def pytest_itemcollected(item: pytest.Item) -> None:
    if serial(item):
        item.add_marker(pytest.mark.serial)
    if item.get_closest_marker("e2e") and not item.nodeid.startswith(E2E_DIR):
        raise pytest.UsageError(f"{item.nodeid} is marked e2e outside {E2E_DIR}: scripts/test.sh collects e2e tests from there only")


@functools.cache
def file_group(path: str) -> str:
    """A test file's group: the session-wide server its tests read from, else the file itself."""
    text = (REPO / path).read_text() if (REPO / path).is_file() else ""
    shared = [group for fixture, group in SHARED_SERVERS.items() if re.search(rf"\b{fixture}\b", text)]
    return shared[0] if shared else path


def scheduling_group(nodeid: str) -> str:
    """A test's group: itself in the moto end-to-end files (without parameters: those share nothing) and in
    SPLIT_FILES (with them), else its file's."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(SPLIT_FILES):
        return nodeid
    return nodeid.split("[", 1)[0] if path.startswith(E2E_FILES) else file_group(path)


def ranked(groups: dict[str, dict[str, bool]]) -> list[str]:
    """The groups in the order workers get them: the known long ones first, longest first; then larger groups first."""
    return sorted(groups, key=lambda scope: (-EXPECTED_SECONDS.get(scope, 0), -len(groups[scope])))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` with the groups above. xdist's own loadgroup reads `xdist_group` marks and renames
    the items' node ids, which pytest 9 no longer lets it do (the groups were silently ignored): this
    scheduler groups by node id instead, through xdist's documented hook."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_group(nodeid)

        def schedule(self) -> None:
            # xdist's LoadScopeScheduling.schedule, but with the groups in the order of `ranked`: xdist orders
            # them by their number of tests, which puts a file of one two-minute test last, alone at the end.
            assert self.collection_is_completed
            if self.collection is not None or not self._check_nodes_have_same_collection():
                return super().schedule()  # a later call reschedules; a collection mismatch is reported there
            self.collection = list(next(iter(self.registered_collections.values())))
            if not self.collection:
                return
            groups: dict[str, dict[str, bool]] = {}
            for nodeid in self.collection:
                groups.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            for scope in ranked(groups):
                self.workqueue[scope] = groups[scope]
            for _ in range(len(self.nodes) - len(self.workqueue)):  # more workers than groups
                self.assigned_work.popitem()[0].shutdown()
            for node in self.nodes:
                self._assign_work_unit(node)
            for node in self.nodes:  # each worker starts with two groups where there are enough (as xdist does)
                self._reschedule(node)
            if not self.workqueue:
                for node in self.nodes:
                    node.shutdown()

    return FileGroups(config, log)
