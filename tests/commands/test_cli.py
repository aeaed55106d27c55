"""The CLI as users run it: a subprocess per command, exit codes, stdout for data, stderr for messages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ALL_EXAMPLE_NAMES, EXAMPLE_NAMES, mlkit


def test_help_lists_every_command(tmp_path):
    result = mlkit("--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in ("init", "validate", "schema", "render", "plan", "apply", "destroy"):
        assert name in result.stdout


def test_bad_command_line_exits_2(tmp_path):
    result = mlkit("render", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_init_writes_a_project_that_validates_and_renders(tmp_path):
    assert mlkit("init", "My_Project", cwd=tmp_path).returncode == 0
    proj = tmp_path / "My_Project"
    assert {"mlkit.yaml", "predictor.py", "requirements.txt", "model"} <= {p.name for p in proj.iterdir()}
    assert "project: my-project" in (proj / "mlkit.yaml").read_text()
    assert mlkit("validate", cwd=proj).returncode == 0
    result = mlkit("render", cwd=proj)
    assert result.returncode == 0, result.stderr
    assert (proj / "infra/terraform/cluster/main.tf").is_file()
    assert (proj / ".mlkit/record.json").is_file()


def test_init_gcp_writes_a_gcp_project_that_validates_and_renders(tmp_path):
    assert mlkit("init", "g", "--cloud", "gcp", cwd=tmp_path).returncode == 0
    assert "cloud: gcp" in (tmp_path / "g/mlkit.yaml").read_text()
    assert mlkit("validate", cwd=tmp_path / "g").returncode == 0
    assert mlkit("render", cwd=tmp_path / "g").returncode == 0
    assert (tmp_path / "g/infra/terraform/cluster/modules/gke/main.tf").is_file()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_init_from_every_example(tmp_path, name):
    assert mlkit("init", "p", "--example", name, cwd=tmp_path).returncode == 0
    assert mlkit("render", cwd=tmp_path / "p").returncode == 0


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p/notes.txt").write_text("mine")
    result = mlkit("init", "p", cwd=tmp_path)
    assert result.returncode == 1
    assert "is not empty; pick a new folder, or pass --force" in result.stderr
    assert not (tmp_path / "p/mlkit.yaml").exists()
    assert mlkit("init", "p", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "p/notes.txt").read_text() == "mine"


def test_init_unknown_example_lists_the_valid_ones(tmp_path):
    result = mlkit("init", "p", "--example", "nope", cwd=tmp_path)
    assert result.returncode == 1
    assert f"no such example (valid: {', '.join(ALL_EXAMPLE_NAMES)})" in result.stderr
    assert not (tmp_path / "p").exists()


def test_init_example_of_another_cloud(tmp_path):
    result = mlkit("init", "p", "--example", "sentiment", "--cloud", "gcp", cwd=tmp_path)
    assert result.returncode == 1 and "--example sentiment targets aws" in result.stderr


def test_invalid_spec_exits_1_with_no_traceback_and_writes_nothing(project):
    proj = project()
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace('kubernetes_version: "1.35"', "kubernetes_version: 1.30"))
    result = mlkit("render", cwd=proj)
    assert result.returncode == 1
    assert 'cluster.kubernetes_version: YAML reads 1.30 as the number 1.3; quote it: "1.30"' in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (proj / "infra").exists() and not (proj / ".mlkit").exists()
    debug = mlkit("--debug", "render", cwd=proj)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_validate_json_goes_to_stdout(project):
    result = mlkit("validate", "--json", cwd=project())
    assert json.loads(result.stdout) == {"valid": True, "project": "sentiment-demo", "cloud": "aws", "apis": ["sentiment"]}


def test_spec_file_flag_and_missing_file(tmp_path):
    result = mlkit("validate", "-f", "elsewhere.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "elsewhere.yaml: no such file" in result.stderr


def test_schema_is_json_schema_with_descriptions(tmp_path):
    schema = json.loads(mlkit("schema", cwd=tmp_path).stdout)
    assert schema["title"] == "mlkit.yaml"
    assert schema["additionalProperties"] is False
    for model in schema["$defs"].values():
        for name, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{model['title']}.{name} has no description"


def test_render_check_and_conflict_exit_codes(project):
    proj = project()
    assert mlkit("render", "--check", cwd=proj).returncode == 1  # nothing rendered yet
    assert mlkit("render", cwd=proj).returncode == 0
    assert mlkit("render", "--check", cwd=proj).returncode == 0

    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("max_nodes: 5", "max_nodes: 7"))
    check = mlkit("render", "--check", "--json", cwd=proj)
    assert check.returncode == 1
    changed = {f["path"]: f["action"] for f in json.loads(check.stdout)["files"] if f["action"] != "unchanged"}
    # The example's pools are Karpenter NodePools: max_nodes is the NodePool's node limit.
    assert changed == {"infra/k8s/_shared/nodepools/cpu.yaml": "updated"}
    assert "nodes: 5\n" in (proj / "infra/k8s/_shared/nodepools/cpu.yaml").read_text()  # --check wrote nothing


def test_render_conflict_reports_and_exits_1(project):
    proj = project()
    mlkit("render", cwd=proj)
    main = proj / "infra/terraform/cluster/main.tf"
    main.write_text(main.read_text().replace('  name = "${var.project}-models-', '  name = "${var.project}-weights-'))
    # Simulate a kit update that changes the same line: rewrite the base mlkit recorded.
    base = proj / ".mlkit/base/infra/terraform/cluster/main.tf"
    base.write_text(base.read_text().replace('  name = "${var.project}-models-', '  name = "${var.project}-old-'))
    record = json.loads((proj / ".mlkit/record.json").read_text())  # and its hash, which the record keeps
    record["files"]["infra/terraform/cluster/main.tf"] = hashlib.sha256(base.read_bytes()).hexdigest()
    (proj / ".mlkit/record.json").write_text(json.dumps(record))
    result = mlkit("render", cwd=proj)
    assert result.returncode == 1
    assert "merge conflicts in 1 files" in result.stderr and "infra/terraform/cluster/main.tf" in result.stderr
    assert "<<<<<<< your edits (infra/terraform/cluster/main.tf)" in main.read_text()


def test_render_refuses_uncommitted_changes_in_git(project):
    proj = project()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=proj, check=True)
    mlkit("render", cwd=proj)
    subprocess.run([*git, "add", "-A"], cwd=proj, check=True)
    subprocess.run([*git, "commit", "-qm", "render"], cwd=proj, check=True)
    (proj / "infra/terraform/cluster/main.tf").write_text("# wip\n")
    result = mlkit("render", cwd=proj)
    assert result.returncode == 1 and "uncommitted changes under infra, .mlkit" in result.stderr and "--allow-dirty" in result.stderr
    assert mlkit("render", "--allow-dirty", cwd=proj).returncode == 0


def test_a_held_lock_stops_a_second_run(project):
    proj = project()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; from mlkit.lock import project_lock\n"
         "with project_lock(Path(sys.argv[1]), 'apply'):\n    print('held', flush=True); time.sleep(30)", str(proj)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = mlkit("render", cwd=proj)
        assert result.returncode == 1
        assert "mlkit apply (pid" in result.stderr and "holds this project's lock" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert mlkit("render", cwd=proj).returncode == 0


def test_plan_without_terraform_exits_3(project):
    proj = project()
    mlkit("render", cwd=proj)
    result = mlkit("plan", cwd=proj, env={"MLKIT_TERRAFORM": str(proj / "no-terraform-here")})
    assert result.returncode == 3
    assert "could not run" in result.stderr


def test_terraform_missing_from_path_exits_3_and_says_how_to_install(project):
    proj = project()
    mlkit("render", cwd=proj)
    result = mlkit("apply", cwd=proj, env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 3
    assert "terraform was not found on PATH. Install Terraform 1.5 or newer" in result.stderr


def test_plan_before_render_says_to_render(project):
    result = mlkit("plan", cwd=project())
    assert result.returncode == 1 and "run `mlkit render` first" in result.stderr


def test_plan_on_stale_infra_says_to_render(project):
    proj = project()
    mlkit("render", cwd=proj)
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("max_nodes: 5", "max_nodes: 7"))
    result = mlkit("apply", cwd=proj)
    assert result.returncode == 1 and "infra/ is out of date" in result.stderr


def test_a_failing_terraform_run_exits_3_with_terraforms_message(project):
    import shutil

    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    proj = project()
    mlkit("render", cwd=proj)
    main = proj / "infra/terraform/cluster/main.tf"
    main.write_text(main.read_text() + '\nresource "aws_s3_bucket" {\n')  # a team edit that does not parse
    result = mlkit("plan", cwd=proj)
    assert result.returncode == 3
    assert "`terraform init` failed" in result.stderr and "main.tf" in result.stderr
    assert "Traceback" not in result.stderr
