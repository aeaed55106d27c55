"""Regeneration: each scenario is a file tree on disk, merged against a new render."""

from __future__ import annotations

from pathlib import Path

from mlkit.render import merge


def render_into(root: Path, files: dict[str, str]) -> merge.MergePlan:
    plan = merge.plan(root, files)
    merge.apply(plan)
    return plan


def actions(plan: merge.MergePlan) -> dict[str, str]:
    return {o.path: o.action for o in plan.outcomes}


V1 = {"infra/a.tf": "a1\na2\na3\na4\na5\n", "infra/b.tf": "b1\n", "infra/c.tf": "c1\n"}


def test_first_render_creates_everything(tmp_path):
    plan = render_into(tmp_path, V1)
    assert set(actions(plan).values()) == {"created"}
    assert (tmp_path / "infra/a.tf").read_text() == V1["infra/a.tf"]
    assert (tmp_path / ".mlkit/base/infra/a.tf").read_text() == V1["infra/a.tf"]


def test_untouched_files_take_the_update(tmp_path):
    render_into(tmp_path, V1)
    plan = render_into(tmp_path, V1 | {"infra/b.tf": "b1\nb2\n"})
    assert actions(plan)["infra/b.tf"] == "updated"
    assert (tmp_path / "infra/b.tf").read_text() == "b1\nb2\n"


def test_edited_file_keeps_edits_and_takes_new_changes(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/a.tf").write_text("a1\nTEAM\na3\na4\na5\n")
    plan = render_into(tmp_path, V1 | {"infra/a.tf": "a1\na2\na3\na4\nKIT\n"})
    assert actions(plan)["infra/a.tf"] == "merged"
    assert (tmp_path / "infra/a.tf").read_text() == "a1\nTEAM\na3\na4\nKIT\n"


def test_edited_file_with_no_kit_change_is_left_alone(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/a.tf").write_text("edited\n")
    plan = render_into(tmp_path, V1)
    assert actions(plan)["infra/a.tf"] == "kept-edits"
    assert (tmp_path / "infra/a.tf").read_text() == "edited\n"


def test_deleted_file_stays_deleted(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/c.tf").unlink()
    plan = render_into(tmp_path, V1 | {"infra/c.tf": "c1\nc2\n"})
    assert actions(plan)["infra/c.tf"] == "kept-deleted"
    assert not (tmp_path / "infra/c.tf").exists()
    assert not plan.out_of_date


def test_files_the_team_added_are_never_touched(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/team.tf").write_text("ours\n")
    plan = render_into(tmp_path, V1 | {"infra/b.tf": "b2\n"})
    assert "infra/team.tf" not in actions(plan)
    assert (tmp_path / "infra/team.tf").read_text() == "ours\n"


def test_both_sides_changing_a_line_is_a_labelled_conflict(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/a.tf").write_text("a1\nTEAM\na3\na4\na5\n")
    plan = render_into(tmp_path, V1 | {"infra/a.tf": "a1\nKIT\na3\na4\na5\n"})
    assert [o.path for o in plan.conflicts] == ["infra/a.tf"]
    text = (tmp_path / "infra/a.tf").read_text()
    assert "<<<<<<< your edits (infra/a.tf)\nTEAM\n=======\nKIT\n>>>>>>> mlkit" in text
    # The record moves on to the new render, so resolving the markers and rendering again is clean.
    (tmp_path / "infra/a.tf").write_text("a1\nTEAM-AND-KIT\na3\na4\na5\n")
    again = render_into(tmp_path, V1 | {"infra/a.tf": "a1\nKIT\na3\na4\na5\n"})
    assert actions(again)["infra/a.tf"] == "kept-edits"


def test_file_no_longer_rendered_is_removed_unless_edited(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/c.tf").write_text("c1\nedited\n")
    plan = render_into(tmp_path, {"infra/a.tf": V1["infra/a.tf"]})
    assert actions(plan) == {"infra/a.tf": "unchanged", "infra/b.tf": "removed", "infra/c.tf": "kept-obsolete"}
    assert not (tmp_path / "infra/b.tf").exists()
    assert (tmp_path / "infra/c.tf").exists()
    assert not (tmp_path / ".mlkit/base/infra/b.tf").exists()


def test_machine_owned_file_is_overwritten(tmp_path):
    render_into(tmp_path, V1)
    (tmp_path / "infra/b.tf").write_text("hand edit\n")
    plan = merge.plan(tmp_path, V1 | {"infra/b.tf": "b2\n"}, machine_owned=frozenset({"infra/b.tf"}))
    merge.apply(plan)
    assert (tmp_path / "infra/b.tf").read_text() == "b2\n"


def test_file_in_the_way_of_a_first_render_conflicts_instead_of_being_overwritten(tmp_path):
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra/a.tf").write_text("handwritten\n")
    plan = render_into(tmp_path, V1)
    assert actions(plan)["infra/a.tf"] == "conflict"
    assert "handwritten" in (tmp_path / "infra/a.tf").read_text()


def test_plan_writes_nothing(tmp_path):
    plan = merge.plan(tmp_path, V1)
    assert len(plan.out_of_date) == 3
    assert not any(tmp_path.iterdir())
