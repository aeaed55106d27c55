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
