"""The parallel phases' groups and their order (tests/conftest.py), as xdist's scheduler gets them."""

from __future__ import annotations

from tests.conftest import EXPECTED_SECONDS, ranked, scheduling_group

KARPENTER = "tests/terraform/test_e2e_moto_karpenter.py::test_karpenter_stack_applies_replans_clean_and_destroys"


def test_each_moto_end_to_end_test_is_a_group_of_its_own_and_other_files_stay_whole():
    migration = "tests/terraform/test_e2e_moto_karpenter.py::test_moving_from_node_groups_to_karpenter_keeps_the_old_groups_until_the_pods_moved"
    assert scheduling_group(KARPENTER) == KARPENTER and scheduling_group(migration) == migration
    assert scheduling_group("tests/terraform/test_batch_access_moto.py::test_x[a]") == "tests/terraform/test_batch_access_moto.py::test_x"
    assert scheduling_group("tests/terraform/test_validate.py::test_rendered_stack_is_fmt_clean_and_valid[llm]") == "tests/terraform/test_validate.py"
    # Files that read from the session's llm server share its group, so that one worker starts it once.
    assert scheduling_group("tests/runtime/test_llm_example.py::test_chat_answers_and_streams_the_same_answer") == "llm"
    assert scheduling_group("tests/commands/test_predict_engine.py::test_x") == "llm"


def test_the_long_groups_go_first_longest_first_then_the_larger_groups():
    groups = {
        "tests/a.py": dict.fromkeys(["tests/a.py::t1", "tests/a.py::t2"], False),
        "tests/b.py": dict.fromkeys(["tests/b.py::t1", "tests/b.py::t2", "tests/b.py::t3"], False),
        KARPENTER: {KARPENTER: False},
        "llm": {"tests/runtime/test_llm_example.py::t": False},
    }
    assert EXPECTED_SECONDS[KARPENTER] > EXPECTED_SECONDS["llm"]
    assert ranked(groups) == [KARPENTER, "llm", "tests/b.py", "tests/a.py"]


def test_the_serial_phase_reads_only_files_that_can_hold_a_serial_test():
    """`-m serial` alone skips files the rules place outside the phase (pytest_ignore_collect), and still
    selects every serial test of the files it reads."""
    import subprocess
    import sys

    from tests.conftest import REPO, may_hold_serial

    tests = REPO / "tests"
    assert may_hold_serial(tests / "runtime/test_load.py")  # a serial file
    assert may_hold_serial(tests / "spec/test_yamlsafe.py")  # named in SERIAL_TESTS
    assert may_hold_serial(tests / "commands/test_cli.py")  # a CLI test whose name says it times (a held lock)
    assert not may_hold_serial(tests / "commands/test_deploy_errors.py")  # the CLI's tests, none timed
    assert not may_hold_serial(tests / "render/test_k8s.py")  # names with "drain" and "timeout", but no server
    files = ["tests/spec/test_yamlsafe.py", "tests/spec/test_engines.py", "tests/commands/test_cli.py", "tests/commands/test_deploy_errors.py",
             "tests/render/test_k8s.py"]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "serial", *files],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert sorted(line for line in out.stdout.splitlines() if "::" in line) == [
        "tests/commands/test_cli.py::test_a_held_lock_stops_a_second_run",
        "tests/spec/test_yamlsafe.py::test_a_billion_laughs_is_refused_at_its_line_fast_and_small",
    ], out.stdout
