"""Revisions in the deploy record (cli/deploy/revisions.py): when a deploy adds one, how the record
stays bounded, the git commit from a real repository, and a rollback's pin reaching the rendered
manifests through the same render that `mlkit render` runs (a pure function of spec and record)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mlkit.deploy import revisions
from mlkit.errors import UserError
from mlkit.render import facts as facts_mod
from mlkit.render.infra import render
from mlkit.spec.loader import load
from tests.conftest import mlkit

DEPLOYMENT = "infra/k8s/sentiment/deployment.yaml"
UPLOADED = "s3://sentiment-demo-models/sentiment/0123456789abcdef/"


@pytest.fixture
def proj(project):
    root = project("sentiment")
    return root, load(root / "mlkit.yaml")


def deployed(facts: facts_mod.Facts, tag: str, model: str = UPLOADED) -> facts_mod.Facts:
    """What apply records for the example's one API: its image tag and where its model folder went."""
    facts.aws_account_id = "123456789012"
    facts.images["sentiment"] = tag
    facts.models["sentiment"] = model
    return facts


def test_a_deploy_that_changes_nothing_adds_no_revision(proj):
    root, spec = proj
    facts = deployed(facts_mod.Facts(), "aaaaaaaaaaaa")
    assert revisions.record(root, spec, facts, now=0) == {"sentiment": 1}
    first = facts.revisions["sentiment"][0]
    assert (first.number, first.time, first.image, first.model) == (1, "1970-01-01T00:00:00Z", "aaaaaaaaaaaa", UPLOADED)
    assert first.git_commit is None, "the project is not in a git repository"
    assert revisions.record(root, spec, facts) == {}, "same image, model, config and spec: the same deploy"

    changed = spec.model_copy(deep=True)
    changed.apis[0].config["threshold"] = 0.7
    assert revisions.record(root, changed, facts) == {"sentiment": 2}
    second = facts.revisions["sentiment"][1]
    assert second.config_hash != first.config_hash and second.spec_hash != first.spec_hash
    assert second.image == first.image

    deployed(facts, "bbbbbbbbbbbb")
    assert revisions.record(root, changed, facts) == {"sentiment": 3}
    facts_mod.save(root, facts)
    assert facts_mod.load(root) == facts, "what is saved loads back the same"


def test_the_record_keeps_the_last_revisions_and_never_reuses_a_number(proj):
    root, spec = proj
    facts = facts_mod.Facts()
    for i in range(facts_mod.KEEP + 7):
        deployed(facts, f"tag{i:09d}")
        revisions.record(root, spec, facts)
    kept = facts.revisions["sentiment"]
    assert len(kept) == facts_mod.KEEP
    assert (kept[0].number, kept[-1].number) == (8, facts_mod.KEEP + 7)
    facts_mod.save(root, facts)  # the bounded record is one load accepts
    with pytest.raises(UserError, match="has no revision 3 \\(revisions: 8 to 57\\)"):
        revisions.target(facts, "sentiment", 3)


def test_the_git_commit_is_the_projects_head(proj):
    root, spec = proj
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")

    def run(*args: str) -> str:
        return subprocess.run([git, *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()

    run("init", "-q")
    assert revisions.git_commit(root) is None, "no commit yet"
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    facts = deployed(facts_mod.Facts(), "aaaaaaaaaaaa")
    revisions.record(root, spec, facts)
    assert facts.revisions["sentiment"][0].git_commit == run("rev-parse", "HEAD")


def test_a_rollback_pins_the_revisions_image_and_model_in_the_render(proj):
    root, spec = proj
    facts = deployed(facts_mod.Facts(), "aaaaaaaaaaaa")
    revisions.record(root, spec, facts)
    deployed(facts, "bbbbbbbbbbbb", "s3://sentiment-demo-models/sentiment/fedcba9876543210/")
    revisions.record(root, spec, facts)
    with pytest.raises(UserError, match="revision 2 is the current one of sentiment"):
        revisions.target(facts, "sentiment", 2)
    goal = revisions.target(facts, "sentiment", None)
    assert goal.number == 1, "by default: the revision before the current one"

    new = revisions.roll_back(root, spec, facts, spec.apis[0], goal)
    assert (new.number, new.rolled_back_from, new.rolled_back_to, new.image, new.model) == (3, 2, 1, "aaaaaaaaaaaa", UPLOADED)
    assert facts.pins == {"sentiment": 3}
    facts_mod.save(root, facts)
    manifest = render(spec, facts_mod.load(root))[DEPLOYMENT]
    assert "sentiment-aaaaaaaaaaaa" in manifest and UPLOADED in manifest
    assert "bbbbbbbbbbbb" not in manifest and "fedcba9876543210" not in manifest
    assert render(spec, facts_mod.load(root)) == render(spec, facts_mod.load(root)), "rendering stays a pure function"

    # Through the CLI: `mlkit render` writes the pinned values, and history marks the pin.
    result = mlkit("render", "--allow-dirty", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "sentiment-aaaaaaaaaaaa" in (root / DEPLOYMENT).read_text()
    history = mlkit("history", "sentiment", cwd=root)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0].split() == ["REV", "TIME", "IMAGE", "MODEL", "CONFIG", "SPEC", "COMMIT"]
    assert lines[3].startswith("3 ") and lines[3].endswith("current, rollback to 1 (from 2), pinned")
    assert "pinned to revision 3" in history.stderr

    # The next apply deploys the spec as written: it drops the pin before recording.
    facts.pins.clear()
    assert revisions.record(root, spec, facts) == {"sentiment": 4}
    assert "sentiment-bbbbbbbbbbbb" in render(spec, facts)[DEPLOYMENT]


def test_many_apis_with_full_histories_still_fit_the_record(proj, monkeypatch):
    """The record's size limit holds whatever the number of APIs: the longest histories give up their oldest revisions."""
    root, spec = proj
    monkeypatch.setattr(revisions, "git_commit", lambda root: "0" * 40)  # 4000 deploys: no need to ask git each time
    facts = facts_mod.Facts()
    for i in range(80):
        spec.apis[0].name = f"api{i:02d}"
        for j in range(facts_mod.KEEP):
            facts.images[spec.apis[0].name] = f"tag{j:09d}"
            revisions.record(root, spec, facts)
    assert len(facts_mod._dump(facts)) > facts_mod.MAX_BYTES
    facts_mod.save(root, facts)
    assert (root / ".mlkit/deploy.json").stat().st_size <= facts_mod.MAX_BYTES
    loaded = facts_mod.load(root)
    kept = {len(v) for v in loaded.revisions.values()}
    assert len(kept) == 1 and 1 < kept.pop() < facts_mod.KEEP, "every API keeps the same number of its newest revisions"
    assert loaded.revisions["api79"][-1].image == f"tag{facts_mod.KEEP - 1:09d}"
