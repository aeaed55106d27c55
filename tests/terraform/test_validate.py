"""The real terraform CLI on the rendered stack of every example: fmt-clean and valid."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import EXAMPLE_NAMES, REPO, cloud_of, mlkit, require_provider

pytestmark = pytest.mark.terraform


def terraform(*args, cwd, env):
    import os

    return subprocess.run(["terraform", *args], cwd=cwd, env=os.environ | env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_rendered_stack_is_fmt_clean_and_valid(project, tf_mirror, tf_env, name):
    require_provider(tf_mirror, cloud_of(name))
    proj = project(name)
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    fmt = terraform("fmt", "-check", "-recursive", "-diff", cwd=stack, env=tf_env)
    assert fmt.returncode == 0, fmt.stdout
    init = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=stack, env=tf_env)
    assert init.returncode == 0, init.stderr
    validate = terraform("validate", "-no-color", cwd=stack, env=tf_env)
    assert validate.returncode == 0, validate.stderr + validate.stdout


@pytest.mark.parametrize("module", sorted(f"{c.name}/{m.name}" for c in (REPO / "terraform").iterdir() for m in c.iterdir()))
def test_each_kit_module_is_valid_on_its_own(tmp_path, tf_mirror, tf_env, module):
    import shutil

    require_provider(tf_mirror, module.split("/")[0])
    shutil.copytree(REPO / "terraform" / module, tmp_path / module)
    fmt = terraform("fmt", "-check", "-diff", cwd=tmp_path / module, env=tf_env)
    assert fmt.returncode == 0, fmt.stdout
    assert terraform("init", "-backend=false", "-input=false", cwd=tmp_path / module, env=tf_env).returncode == 0
    validate = terraform("validate", "-no-color", cwd=tmp_path / module, env=tf_env)
    assert validate.returncode == 0, validate.stderr


def test_templates_stay_fmt_clean_for_an_existing_vpc_and_s3_state(tmp_path, tf_env):
    (tmp_path / "mlkit.yaml").write_text(
        "project: acme\ncloud: aws\nregion: us-east-1\nstate: {backend: s3, bucket: acme-state}\n"
        "network: {existing_vpc_id: vpc-0abc, existing_private_subnet_ids: [subnet-0a, subnet-0b]}\n"
        "cluster:\n  node_pools:\n    - {name: cpu, instance_type: c7g.large}\n"
    )
    assert mlkit("render", cwd=tmp_path).returncode == 0
    stack = tmp_path / "infra/terraform/cluster"
    fmt = terraform("fmt", "-check", "-recursive", "-diff", cwd=stack, env=tf_env)
    assert fmt.returncode == 0, fmt.stdout
    assert terraform("init", "-backend=false", "-input=false", cwd=stack, env=tf_env).returncode == 0
    validate = terraform("validate", "-no-color", cwd=stack, env=tf_env)
    assert validate.returncode == 0, validate.stderr
