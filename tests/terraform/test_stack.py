"""Terraform's plan file lives in the project's `.mlkit/plans/`, which comes from pull requests: a link
planted there must not make terraform write a plan (every planned value) outside the project."""

from __future__ import annotations

import os

import pytest

from tests.conftest import assert_one_line_error, mlkit


def test_a_linked_plans_folder_is_refused_before_terraform_runs(project, sentinel):
    proj = project("sentiment")
    assert mlkit("render", cwd=proj).returncode == 0
    (proj / ".mlkit").mkdir(exist_ok=True)
    os.symlink(sentinel.root, proj / ".mlkit/plans")
    result = mlkit("plan", cwd=proj)
    assert_one_line_error(result, ".mlkit/plans is a symbolic link")
    assert "terraform init" not in result.stderr  # refused before terraform ran
    sentinel.assert_untouched()


def test_a_link_in_the_plan_files_place_is_removed_never_written_through(project, sentinel):
    proj = project("sentiment")
    assert mlkit("render", cwd=proj).returncode == 0
    (proj / ".mlkit/plans").mkdir(parents=True, exist_ok=True)
    planted = proj / ".mlkit/plans/cluster.tfplan"
    os.symlink(sentinel.root / "notes.txt", planted)
    # No terraform on PATH: the run stops at terraform's version check, after the plan file's place was cleared.
    empty = proj.parent / "no-tools"
    empty.mkdir()
    result = mlkit("plan", cwd=proj, env={"PATH": str(empty), "MLKIT_TERRAFORM": str(empty / "terraform")})
    assert_one_line_error(result, "terraform", code=3)  # a missing tool: exit 3
    assert not planted.is_symlink()
    sentinel.assert_untouched()


@pytest.mark.parametrize(("printed", "fragment"), [
    ('{"terraform_version": ' + "9" * 5000 + "}", "`terraform version -json` printed no version mlkit can read"),
    ("[1, 2]", "`terraform version -json` printed no version mlkit can read"),
])
def test_a_terraform_printing_what_mlkit_cannot_read_is_one_line(tmp_path, monkeypatch, printed, fragment):
    """Tool output is data too: a 5000-digit number once raised ValueError (int()'s digit limit) from json.loads."""
    from mlkit.errors import ToolError
    from mlkit.terraform.runner import Terraform

    fake = tmp_path / "terraform"
    (tmp_path / "out.json").write_text(printed)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'out.json'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MLKIT_TERRAFORM", str(fake))
    with pytest.raises(ToolError) as raised:
        Terraform(tmp_path).check_version()
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
    (tmp_path / "out.json").write_text('{"x": {"value": ' + "9" * 5000 + "}}" if printed.startswith("{") else "[1, 2]")
    with pytest.raises(ToolError, match="`terraform output -json` in .* printed what mlkit cannot read"):
        Terraform(tmp_path).output()
