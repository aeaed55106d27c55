"""`mlkit history` and `mlkit rollback` as a user runs them: the real CLI in a subprocess, the Kubernetes
API emulator as the cluster (through a kubeconfig context), moto as AWS (STS, ECR), and the
Deployment controller played as in test_operate. Two deploys with different predictor code (so two
image tags) and models, a rollback to the first, then `mlkit status` shows the first image again."""

from __future__ import annotations

import json

import pytest

from tests.commands import test_operate
from tests.commands.test_operate import controlled, push_images
from tests.conftest import assert_one_line_error, mlkit

proj = test_operate.proj  # the fixture, shared: pytest finds it by this module-level name

REGISTRY = "123456789012.dkr.ecr.us-west-2.amazonaws.com/ops-demo"


def deploy(root, env, k8s) -> dict:
    result = controlled(k8s.url, "apply", "--only", "apis", "--timeout", "30", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["apis"]


def history(root, env, api: str = "sentiment") -> dict:
    result = mlkit("history", api, "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def on_cluster(k8s, name: str) -> tuple[str, list[str]]:
    """The predictor image and the model-fetch command of a Deployment on the emulator."""
    pod = next(d for d in k8s.objects("deployments") if d["metadata"]["name"] == name)["spec"]["template"]["spec"]
    return pod["containers"][0]["image"], pod["initContainers"][0]["command"]


def test_two_deploys_then_a_rollback_runs_the_first_image_again(proj, k8s, moto):
    root, env = proj
    first = push_images(root, moto)
    assert deploy(root, env, k8s)["revisions"] == {"sentiment": 1, "spam": 1}

    # The second deploy: new predictor code (a new image tag for both APIs) and a new model for sentiment.
    (root / "predictor.py").write_text((root / "predictor.py").read_text() + "\n# v2: a fix\n")
    spec = (root / "mlkit.yaml").read_text()
    (root / "mlkit.yaml").write_text(spec.replace("s3://team-models/sentiment/v3/", "s3://team-models/sentiment/v4/"))
    second = push_images(root, moto)
    assert second["sentiment"] != first["sentiment"]
    assert deploy(root, env, k8s)["revisions"] == {"sentiment": 2, "spam": 2}
    assert on_cluster(k8s, "sentiment")[0] == f"{REGISTRY}:sentiment-{second['sentiment']}"

    before = history(root, env)
    assert [r["number"] for r in before["revisions"]] == [1, 2] and before["current"] == 2 and before["pinned"] is None
    assert [r["image"] for r in before["revisions"]] == [first["sentiment"], second["sentiment"]]
    assert [r["model"] for r in before["revisions"]] == ["s3://team-models/sentiment/v3/", "s3://team-models/sentiment/v4/"]
    assert before["revisions"][0]["git_commit"] is None, "the project is not in a git repository"

    # --to out of range, or the current one: one line naming the revisions there are; nothing changes.
    record = (root / ".mlkit/deploy.json").read_bytes()
    assert_one_line_error(mlkit("rollback", "sentiment", "--to", "9", "--yes", cwd=root, env=env),
                          "--to 9: sentiment has no revision 9 (revisions: 1, 2)")
    assert_one_line_error(mlkit("rollback", "sentiment", "--to", "2", "--yes", cwd=root, env=env), "revision 2 is the current one")
    assert_one_line_error(mlkit("rollback", "sentiment", cwd=root, env=env, input="n\n"), "rollback cancelled; nothing was changed")
    assert (root / ".mlkit/deploy.json").read_bytes() == record

    rolled = controlled(k8s.url, "rollback", "sentiment", "--yes", "--timeout", "30", "--json", cwd=root, env=env)
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    # The spec entry changed since revision 1 (its model): the rollback says what it does not restore.
    assert "warning: revision 1 was deployed with a different mlkit.yaml entry" in rolled.stderr
    assert "~ infra/k8s/sentiment/deployment.yaml" in rolled.stderr and "sentiment: 1/1 ready" in rolled.stderr
    out = json.loads(rolled.stdout)
    assert out["revision"]["number"] == 3 and out["rolled_out"] == ["sentiment"]

    status = mlkit("status", "--json", cwd=root, env=env)
    assert status.returncode == 0, status.stderr
    rows = {r["api"]: r for r in json.loads(status.stdout)["apis"]}
    assert rows["sentiment"]["image"] == f"{REGISTRY}:sentiment-{first['sentiment']}"
    assert rows["spam"]["image"] == f"{REGISTRY}:spam-{second['spam']}", "the other API stays where it was"
    assert "s3://team-models/sentiment/v3/" in on_cluster(k8s, "sentiment")[1], "the first revision's model too"

    after = history(root, env)
    assert [r["number"] for r in after["revisions"]] == [1, 2, 3] and after["current"] == 3 and after["pinned"] == 3
    third = after["revisions"][2]
    assert (third["rolled_back_from"], third["rolled_back_to"], third["image"]) == (2, 1, first["sentiment"])
    table = mlkit("history", "sentiment", cwd=root, env=env)
    assert table.stdout.splitlines()[-1].endswith("current, rollback to 1 (from 2), pinned")
    check = mlkit("render", "--check", cwd=root, env=env)
    assert check.returncode == 0, check.stderr  # infra/ is the render of mlkit.yaml and the record, pin included

    # The next apply deploys mlkit.yaml as written again: the pin ends, a fourth revision runs the second image.
    assert deploy(root, env, k8s)["revisions"] == {"sentiment": 4}
    assert on_cluster(k8s, "sentiment")[0] == f"{REGISTRY}:sentiment-{second['sentiment']}"
    assert history(root, env)["pinned"] is None
    assert len(history(root, env, "spam")["revisions"]) == 2


def test_history_and_rollback_of_an_unknown_api_list_the_apis(proj):
    root, env = proj
    for args in (["history", "nope"], ["rollback", "nope", "--yes"]):
        assert_one_line_error(mlkit(*args, cwd=root, env=env), "no API named 'nope'", "(APIs: sentiment, spam)")
    empty = mlkit("history", "sentiment", cwd=root, env=env)
    assert empty.returncode == 0 and empty.stdout == "" and "no revisions of sentiment yet" in empty.stderr
    assert_one_line_error(mlkit("rollback", "sentiment", "--yes", cwd=root, env=env), "has no revisions of sentiment")
    bad = mlkit("rollback", "sentiment", "--to", "0", cwd=root, env=env)
    assert bad.returncode == 2 and "--to" in bad.stderr
    # A record from a pull request is data: a bad revision stops both commands in one line, before any cluster is reached.
    (root / ".mlkit/deploy.json").write_text(json.dumps({"revisions": {"sentiment": [REVISION | {"image": "v1\nkind: Secret"}]}}))
    for args in (["history", "sentiment"], ["rollback", "sentiment", "--yes"]):
        assert_one_line_error(mlkit(*args, cwd=root, env=env), ".mlkit/deploy.json: revisions.sentiment[0].image must be a Docker image tag",
                              "git checkout -- .mlkit/deploy.json")


REVISION = {"number": 1, "time": "2026-11-29T23:10:00Z", "image": "0123456789ab", "model": "s3://team-models/sentiment/v3/",
            "config_hash": "0123456789abcdef", "spec_hash": "fedcba9876543210", "git_commit": None}


@pytest.mark.parametrize(
    ("revisions", "given", "says"),
    [
        ([REVISION], "", "sentiment has only revision 1, the current one: there is nothing before it to roll back to"),
        ([REVISION], "--to 1", "revision 1 is the current one of sentiment"),
        # Only the config changed between them: a rollback restores images and models, so it would change nothing.
        ([REVISION, REVISION | {"number": 2, "config_hash": "1" * 16, "spec_hash": "2" * 16}], "",
         "revision 1 of sentiment ran the same image and model as the current one (2)"),
    ],
)
def test_a_rollback_that_would_change_nothing_says_why(proj, revisions, given, says):
    root, env = proj
    (root / ".mlkit/deploy.json").write_text(json.dumps({"revisions": {"sentiment": revisions}}))
    assert_one_line_error(mlkit("rollback", "sentiment", *given.split(), "--yes", cwd=root, env=env), says)
