"""Project files are data, not instructions: `.mlkit/` and `infra/` as a pull request someone else
wrote could leave them. Each case runs the real CLI on a rendered project with a sentinel tree
beside it that the hostile files point at, and expects exit 1, one error line naming the file and
the fix, no traceback, and nothing outside the project written, deleted or truncated."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, mlkit, tree_snapshot

DEPLOYMENT = "infra/k8s/sentiment/deployment.yaml"
TFVARS = "infra/terraform/cluster/mlkit.auto.tfvars.json"


@pytest.fixture(scope="module")
def rendered_once(tmp_path_factory) -> Path:
    """`mlkit init` and `mlkit render` of the sentiment example, once for the module (two CLI runs a case
    were most of this file's time); each case gets its own copy."""
    where = tmp_path_factory.mktemp("rendered-once")
    assert mlkit("init", "proj", "--example", "sentiment", cwd=where).returncode == 0
    result = mlkit("render", cwd=where / "proj")
    assert result.returncode == 0, result.stderr
    return where / "proj"


@pytest.fixture
def rendered(rendered_once, tmp_path) -> Path:
    """A freshly rendered project at tmp_path/proj (beside the sentinel's tmp_path/outside), copied with
    its files' times from the module's one render: the same bytes `project` + `mlkit render` would give."""
    import shutil

    return Path(shutil.copytree(rendered_once, tmp_path / "proj", symlinks=True))


def one_error(result, *fragments: str) -> None:
    assert_one_line_error(result, *fragments)
    # One error (a line, or a short block listing files), and it ends the output.
    lines = result.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error")]
    assert len(errors) == 1 and all(line.startswith("  ") for line in lines[errors[0] + 2 :]), result.stderr


def record(root: Path) -> dict:
    return json.loads((root / ".mlkit/record.json").read_text())


def add_to_record(root: Path, rel: str, base_at: Path, content: bytes) -> None:
    """What an attacker commits: a record entry, and a base copy equal to the target, so mlkit would think it wrote it."""
    data = record(root)
    data["files"][rel] = hashlib.sha256(content).hexdigest()
    (root / ".mlkit/record.json").write_text(json.dumps(data))
    base_at.parent.mkdir(parents=True, exist_ok=True)
    base_at.write_bytes(content)


def change_spec(root: Path) -> None:
    """A spec change that re-renders the Deployment (its config hash) and the ConfigMap."""
    spec = root / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("threshold: 0.5", "threshold: 0.7"))


# -- the record ----------------------------------------------------------------------------------


def test_an_absolute_record_path_is_refused_and_nothing_deleted(rendered, sentinel):
    target = sentinel.root / "notes.txt"
    add_to_record(rendered, str(target), rendered / ".mlkit/base" / "x", target.read_bytes())
    # pathlib joins an absolute path as itself: the base copy "under" .mlkit/base is the target.
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), ".mlkit/record.json", "is absolute", "--forget-record", "git checkout -- .mlkit")
    sentinel.assert_untouched()


def test_a_record_path_climbing_out_is_refused(rendered, sentinel):
    target = sentinel.root / "notes.txt"
    rel = "infra/../../outside/notes.txt"
    add_to_record(rendered, rel, rendered / ".mlkit/base" / rel, target.read_bytes())
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json", "climbs out with '..'", "--forget-record")
    sentinel.assert_untouched()


@pytest.mark.parametrize(
    ("rel", "says"),
    [
        ("mlkit.yaml", "is not under infra/"),
        ("predictor.py", "is not under infra/"),
        ("infra\\k8s\\x.yaml", "backslash"),
        ("infra/k8s/x.yaml\u0000.txt", "NUL"),
        ("infra/./k8s/x.yaml", "not normalised"),
        ("infra//k8s/x.yaml", "not normalised"),
        ("", "empty"),
    ],
)
def test_record_paths_must_be_relative_normalised_and_under_infra(rendered, sentinel, rel, says):
    before = (rendered / "mlkit.yaml").read_bytes(), (rendered / "predictor.py").read_bytes()
    data = record(rendered)
    data["files"][rel] = hashlib.sha256(b"").hexdigest()
    (rendered / ".mlkit/record.json").write_text(json.dumps(data))
    if rel in ("mlkit.yaml", "predictor.py"):  # a base copy equal to the file: main deleted it as no longer rendered
        (rendered / ".mlkit/base" / rel).write_bytes((rendered / rel).read_bytes())
        data["files"][rel] = hashlib.sha256((rendered / rel).read_bytes()).hexdigest()
        (rendered / ".mlkit/record.json").write_text(json.dumps(data))
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json", says)
    assert ((rendered / "mlkit.yaml").read_bytes(), (rendered / "predictor.py").read_bytes()) == before
    sentinel.assert_untouched()


def test_a_record_listing_a_path_twice_is_refused(rendered):
    text = (rendered / ".mlkit/record.json").read_text()
    digest = record(rendered)["files"][DEPLOYMENT]
    text = text.replace('"files": {', f'"files": {{\n    "{DEPLOYMENT}": "{digest}",', 1)
    (rendered / ".mlkit/record.json").write_text(text)
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json", f"lists '{DEPLOYMENT}' twice")


def test_a_record_path_differing_in_case_from_the_machine_owned_tfvars_is_refused(rendered):
    # On a case-insensitive disk (macOS, Windows) deleting it "as no longer rendered" deletes the tfvars.
    rel = TFVARS.replace("mlkit.auto", "MLKIT.auto")
    content = (rendered / TFVARS).read_bytes()
    add_to_record(rendered, rel, rendered / ".mlkit/base" / rel, content)
    (rendered / rel).write_bytes(content)
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json", "one file where case does not count")
    assert (rendered / TFVARS).read_bytes() == content


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ('{"files": ["infra/a.tf"]}', '"files": {path: sha256}'),
        ("[]", '"files": {path: sha256}'),
        ('{"files": {"infra/a.tf": 7}}', "not a sha256"),
        ("[" * 100_000 + "]" * 100_000, "nested more than 64 levels deep"),
        ('{"files": {}, "n": ' + "9" * 5000 + "}", "an integer of 5000 digits"),  # int()'s digit limit: a traceback once
        ('{"files": {}, "n": NaN}', "NaN is not JSON"),
    ],
)
def test_a_corrupt_record_is_one_line_with_the_way_out(rendered, text, says):
    (rendered / ".mlkit/record.json").write_text(text)
    for args in (["render"], ["render", "--check"], ["plan"]):
        one_error(mlkit(*args, cwd=rendered), ".mlkit/record.json", says, "--forget-record")


def test_a_huge_record_is_refused_without_reading_it_all(rendered):
    with open(rendered / ".mlkit/record.json", "wb") as f:
        f.truncate(17 * 1024 * 1024)
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json", "bytes, more than mlkit ever writes there")


def test_a_base_copy_that_does_not_match_the_record_is_refused(rendered):
    (rendered / ".mlkit/base" / DEPLOYMENT).write_text("kind: Deployment\n")
    one_error(mlkit("render", cwd=rendered), f".mlkit/base/{DEPLOYMENT} does not match the hash", "--forget-record")


def test_a_base_copy_that_is_a_symlink_is_refused(rendered, sentinel):
    base = rendered / ".mlkit/base" / DEPLOYMENT
    base.unlink()
    base.symlink_to(sentinel.root / "notes.txt")
    change_spec(rendered)
    one_error(mlkit("render", cwd=rendered), f".mlkit/base/{DEPLOYMENT} is a symbolic link", "--forget-record")
    sentinel.assert_untouched()


def test_a_binary_record_names_the_way_out(rendered):
    (rendered / ".mlkit/record.json").write_bytes(b"\xff\xfe{\x00}")
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json is a binary file", "--forget-record", "git checkout -- .mlkit")


def test_forget_record_rebases_and_shows_every_difference_as_a_conflict(rendered, sentinel):
    """The way out of a corrupt record: no file is overwritten or deleted on the record's word."""
    (rendered / ".mlkit/record.json").write_text('{"files": {"/etc/passwd": "x"}}')
    edited = (rendered / DEPLOYMENT).read_text().replace("replicas", "replicas  # team edit", 1)
    (rendered / DEPLOYMENT).write_text(edited)
    (rendered / "infra/team.tf").write_text("# ours\n")
    change_spec(rendered)
    check = mlkit("render", "--check", "--forget-record", cwd=rendered)
    assert check.returncode == 1 and "would be conflict" in check.stderr
    result = mlkit("render", "--forget-record", cwd=rendered)
    # Without a trusted base mlkit cannot tell a team's edit from its own older output: both files
    # the new spec changes are shown as conflicts, none is overwritten.
    one_error(result, "merge conflicts in 2 files", DEPLOYMENT, "infra/k8s/sentiment/configmap.yaml")
    text = (rendered / DEPLOYMENT).read_text()
    assert "# team edit" in text and "<<<<<<< your edits" in text  # the edit is kept, in plain sight
    assert "namespace.yaml" not in result.stderr  # equal to the render: nothing to review
    assert (rendered / "infra/team.tf").read_text() == "# ours\n"
    assert all(not rel.startswith("/") for rel in record(rendered)["files"])
    # Resolved (here: the new render taken), the next render is clean and the record trusted again.
    for rel in (DEPLOYMENT, "infra/k8s/sentiment/configmap.yaml"):
        (rendered / rel).write_text((rendered / ".mlkit/base" / rel).read_text())
    assert mlkit("render", cwd=rendered).returncode == 0
    assert mlkit("render", "--check", cwd=rendered).returncode == 0
    sentinel.assert_untouched()


def test_forget_record_also_replaces_damaged_base_copies(rendered, sentinel):
    base = rendered / ".mlkit/base" / DEPLOYMENT
    base.unlink()
    base.symlink_to(sentinel.root / "notes.txt")
    one_error(mlkit("render", cwd=rendered), f".mlkit/base/{DEPLOYMENT} is a symbolic link")
    result = mlkit("render", "--forget-record", cwd=rendered)
    assert result.returncode == 0, result.stderr
    assert not base.is_symlink() and base.read_text() == (rendered / DEPLOYMENT).read_text()
    assert mlkit("render", "--check", cwd=rendered).returncode == 0
    sentinel.assert_untouched()


def test_a_record_that_is_a_symlink_is_refused_and_forget_record_replaces_it(rendered, sentinel):
    record_file = rendered / ".mlkit/record.json"
    (sentinel.root / "record.json").write_text(record_file.read_text())
    sentinel.before = tree_snapshot(sentinel.root)  # the copy is part of what must stay untouched
    record_file.unlink()
    record_file.symlink_to(sentinel.root / "record.json")
    one_error(mlkit("render", cwd=rendered), ".mlkit/record.json is a symbolic link")
    result = mlkit("render", "--forget-record", cwd=rendered)
    assert result.returncode == 0, result.stderr
    assert not record_file.is_symlink() and record(rendered)["files"]
    sentinel.assert_untouched()


# -- links, folders and binary files where mlkit keeps files -------------------------------------


@pytest.mark.parametrize("args", [["render"], ["render", "--check"]])
def test_a_lock_that_is_a_symlink_is_refused_not_truncated(rendered, sentinel, args):
    lock = rendered / ".mlkit/lock"
    lock.unlink()
    lock.symlink_to(sentinel.root / "notes.txt")
    one_error(mlkit(*args, cwd=rendered), ".mlkit/lock is a symbolic link", "rm .mlkit/lock")
    sentinel.assert_untouched()


def test_a_lock_that_is_a_folder_or_a_fifo_is_refused(rendered):
    lock = rendered / ".mlkit/lock"
    lock.unlink()
    lock.mkdir()
    one_error(mlkit("render", "--check", cwd=rendered), ".mlkit/lock is a folder")
    lock.rmdir()
    os.mkfifo(lock)
    one_error(mlkit("render", "--check", cwd=rendered, timeout=30), ".mlkit/lock is not a regular file")


@pytest.mark.parametrize(
    "planted",
    [".mlkit/.record.json.mlkit-tmp", "infra/k8s/sentiment/.deployment.yaml.mlkit-tmp", ".mlkit/base/infra/k8s/sentiment/.deployment.yaml.mlkit-tmp"],
)
def test_a_link_planted_at_a_temp_path_is_not_written_through(rendered, sentinel, planted):
    (rendered / planted).symlink_to(sentinel.root / "notes.txt")
    change_spec(rendered)
    result = mlkit("render", cwd=rendered)
    assert result.returncode == 0, result.stderr
    assert (rendered / planted).is_symlink()  # left as it was: temp files have fresh, exclusive names
    sentinel.assert_untouched()


def test_a_rendered_file_that_is_a_symlink_is_named(rendered, sentinel):
    (rendered / DEPLOYMENT).unlink()
    (rendered / DEPLOYMENT).symlink_to(sentinel.root / "notes.txt")
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), f"{DEPLOYMENT} is a symbolic link")
    sentinel.assert_untouched()


@pytest.mark.parametrize("link", ["infra", ".mlkit", ".mlkit/base", "infra/terraform", "infra/k8s/sentiment"])
def test_a_linked_folder_on_the_way_is_refused(rendered, sentinel, link, tmp_path):
    path = rendered / link
    moved = tmp_path / "moved"
    path.rename(moved)
    # The link points at the sentinel: a write through it would land outside the project.
    target = sentinel.root / "infra" if link == "infra" else sentinel.root
    path.symlink_to(target)
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), f"{link} is a symbolic link")
    sentinel.assert_untouched()


def test_a_rendered_path_that_became_a_folder_is_named(rendered):
    (rendered / DEPLOYMENT).unlink()
    (rendered / DEPLOYMENT).mkdir()
    (rendered / DEPLOYMENT / "x").write_text("x")
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), f"{DEPLOYMENT} is a folder where mlkit keeps a file")


def test_a_rendered_path_that_became_a_binary_file_is_named(rendered):
    (rendered / DEPLOYMENT).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), f"{DEPLOYMENT} is a binary file")


def test_a_rendered_path_that_became_a_fifo_is_named_without_blocking(rendered):
    (rendered / DEPLOYMENT).unlink()
    os.mkfifo(rendered / DEPLOYMENT)
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered, timeout=60), f"{DEPLOYMENT} is not a regular file")


def test_a_folder_of_rendered_files_that_became_a_file_is_named(rendered):
    folder = rendered / "infra/k8s/sentiment"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.write_text("not a folder\n")
    one_error(mlkit("render", cwd=rendered), "infra/k8s/sentiment is not a folder")


# -- conflict markers ---------------------------------------------------------------------------


def test_conflict_markers_fail_render_and_check_until_resolved(rendered):
    path = rendered / "infra/k8s/sentiment/configmap.yaml"
    text = path.read_text()
    assert "0.5" in text
    path.write_text(text.replace("0.5", "0.6"))  # the team's edit
    change_spec(rendered)  # mlkit changes the same line
    first = mlkit("render", cwd=rendered)
    one_error(first, "merge conflicts in", "infra/k8s/sentiment/configmap.yaml")
    assert "<<<<<<< your edits" in path.read_text()
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), "unresolved merge conflicts in 1 files", "infra/k8s/sentiment/configmap.yaml")
    one_error(mlkit("plan", cwd=rendered), "out of date", "infra/k8s/sentiment/configmap.yaml")  # terraform never sees it either
    resolved = path.read_text()
    start, end = resolved.index("<<<<<<<"), resolved.index(">>>>>>>")
    chosen = resolved[start:end].split("=======\n")[1]
    path.write_text(resolved[:start] + chosen + resolved[resolved.index("\n", end) + 1 :])
    assert mlkit("render", cwd=rendered).returncode == 0
    assert mlkit("render", "--check", cwd=rendered).returncode == 0


def test_git_conflict_markers_in_a_rendered_file_fail_the_check(rendered):
    path = rendered / "infra/terraform/cluster/main.tf"
    path.write_text("<<<<<<< HEAD\n# ours\n=======\n# theirs\n>>>>>>> feature/x\n" + path.read_text())
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), "unresolved merge conflicts", "infra/terraform/cluster/main.tf")


# -- deploy.json --------------------------------------------------------------------------------

# One good revision of the deploy record, as `mlkit apply` writes it; the cases below spoil one field each.
REVISION = {
    "number": 1, "time": "2026-11-29T23:10:00Z", "image": "0123456789ab", "model": "s3://acme-models/sentiment/v3/",
    "config_hash": "0123456789abcdef", "spec_hash": "fedcba9876543210", "git_commit": None,
    "rolled_back_from": None, "rolled_back_to": None,
}


@pytest.mark.parametrize(
    ("facts", "says"),
    [
        ("{oops", "not valid JSON"),
        ('{"aws_account_id": ' + "1" * 5000 + "}", "an integer of 5000 digits"),  # int()'s digit limit: a traceback once
        ('{"pins": {"sentiment": ' + "7" * 300 + "}}", "pins.sentiment must be the number of a rollback revision"),
        ('{"aws_account_id": Infinity}', "Infinity is not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"images": ["a"]}', "images must be an object"),
        ('{"colour": "blue"}', "unknown field 'colour'"),
        ('{"aws_account_id": 123456789012}', "aws_account_id must be 12 digits"),
        ('{"aws_account_id": "1234\\nkind: Secret"}', "aws_account_id must be 12 digits"),
        ('{"images": {"sentiment": "v1\\n        command: [sh]"}}', "images.sentiment must be a Docker image tag"),
        ('{"images": {"sentiment": "v1\\"; x"}}', "images.sentiment must be a Docker image tag"),
        ('{"images": {"Bad Name": "v1"}}', "is not an API name"),
        ('{"models": {"sentiment": "s3://b/p/\\n- x"}}', "models.sentiment must be s3://BUCKET/PREFIX/"),
        ('{"models": {"sentiment": "http://example.com/m/"}}', "models.sentiment must be s3://BUCKET/PREFIX/"),
        ('{"models": {"sentiment": "s3://bucket/../other/"}}', "models.sentiment must be s3://BUCKET/PREFIX/"),
        (" " * (2 * 1024 * 1024) + "{}", "far more than a deploy record holds"),
        # Revisions and pins (cli/deploy/revisions.py): a pinned revision's image and model reach the manifests.
        ('{"revisions": []}', "revisions must be an object of API name -> list of revisions"),
        ('{"revisions": {"Bad Name": []}}', "revisions: 'Bad Name' is not an API name"),
        ('{"revisions": {"sentiment": {"number": 1}}}', "revisions.sentiment must be a list of at most 50 revisions"),
        (json.dumps({"revisions": {"sentiment": ["x"] * 51}}), "revisions.sentiment must be a list of at most 50 revisions"),
        ('{"revisions": {"sentiment": ["x"]}}', "revisions.sentiment[0] must be an object with number, time, image"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"colour": "blue"}]}}), "revisions.sentiment[0]: unknown field 'colour'"),
        (json.dumps({"revisions": {"sentiment": [{k: v for k, v in REVISION.items() if k != "spec_hash"}]}}),
         "revisions.sentiment[0]: spec_hash is missing"),
        (json.dumps({"revisions": {"sentiment": [REVISION, REVISION]}}), "revisions.sentiment[1].number must be a whole number above 1"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"number": True}]}}), "revisions.sentiment[0].number must be a whole number above 0"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"time": "yesterday"}]}}), "revisions.sentiment[0].time must be a UTC time"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"image": "v1\n        command: [sh]"}]}}),
         "revisions.sentiment[0].image must be a Docker image tag or null"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"model": "s3://bucket/p/\n- x"}]}}),
         "revisions.sentiment[0].model must be s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"model": "http://example.com/m/"}]}}), "revisions.sentiment[0].model must be s3://"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"config_hash": "ABC"}]}}), "revisions.sentiment[0].config_hash must be 16 lowercase hex"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"git_commit": "main"}]}}), "revisions.sentiment[0].git_commit must be a 40 or 64 hex"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"rolled_back_from": 1, "rolled_back_to": 1}]}}),
         "rolled_back_from and rolled_back_to must both be earlier revision numbers"),
        (json.dumps({"revisions": {"sentiment": [REVISION | {"rolled_back_to": 7}]}}), "rolled_back_from and rolled_back_to must both"),
        (json.dumps({"revisions": {"sentiment": [REVISION]}, "pins": {"sentiment": 1}}),
         "pins.sentiment must be the number of a rollback revision in revisions.sentiment, not 1"),
        (json.dumps({"revisions": {"sentiment": [REVISION]}, "pins": {"spam": "1"}}), "pins.spam must be the number of a rollback revision"),
        ('{"pins": [1]}', "pins must be an object of API name -> revision number"),
    ],
)
def test_a_bad_deploy_record_is_one_line_with_the_way_out(rendered, facts, says):
    (rendered / ".mlkit/deploy.json").write_text(facts)
    before = (rendered / DEPLOYMENT).read_bytes()
    for args in (["render"], ["render", "--check"]):
        one_error(mlkit(*args, cwd=rendered), ".mlkit/deploy.json", says, "git checkout -- .mlkit/deploy.json", "placeholders")
    assert (rendered / DEPLOYMENT).read_bytes() == before


def test_the_way_out_of_a_bad_deploy_record_is_placeholders_until_the_next_apply(rendered):
    good = {"aws_account_id": "123456789012", "images": {"sentiment": "0123456789ab"}, "models": {"sentiment": "s3://acme-models/sentiment/0123456789abcdef/"}}
    (rendered / ".mlkit/deploy.json").write_text(json.dumps(good))
    assert mlkit("render", cwd=rendered).returncode == 0
    assert "sentiment-0123456789ab" in (rendered / DEPLOYMENT).read_text()
    (rendered / ".mlkit/deploy.json").write_text('{"images": {"sentiment": "x\\ny"}}')
    assert mlkit("render", cwd=rendered).returncode == 1
    (rendered / ".mlkit/deploy.json").unlink()
    result = mlkit("render", cwd=rendered)
    assert result.returncode == 0, result.stderr
    text = (rendered / DEPLOYMENT).read_text()
    assert "sentiment-BUILT-ON-APPLY" in text and "ACCOUNT-ID" in text


def test_a_deploy_record_that_is_a_symlink_is_refused(rendered, sentinel):
    (rendered / ".mlkit/deploy.json").symlink_to(sentinel.root / "notes.txt")
    one_error(mlkit("render", cwd=rendered), ".mlkit/deploy.json is a symbolic link", "git checkout -- .mlkit/deploy.json")
    sentinel.assert_untouched()
