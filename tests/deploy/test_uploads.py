"""Model upload against moto's S3: content-addressed prefixes, unchanged files skipped, clear errors."""

from __future__ import annotations

import pytest

from mlkit.deploy import uploads
from mlkit.errors import UserError


def model_folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 2048)
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"junk")
    return folder


def test_upload_is_content_addressed_and_skips_what_is_there(s3, tmp_path):
    folder = model_folder(tmp_path)
    said: list[str] = []
    first = uploads.upload("aws", "models", "sentiment", folder, "mlkit.yaml: apis[0].model", said.append)
    assert first.uploaded == 2 and first.skipped == 0
    assert first.uri.startswith("s3://models/sentiment/") and first.uri.endswith("/")
    prefix = first.uri.removeprefix("s3://models/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"])
    assert keys == [prefix + "tokenizer/vocab.txt", prefix + "weights.bin"]
    head = s3.head_object(Bucket="models", Key=prefix + "weights.bin")
    assert head["Metadata"]["sha256"] == uploads.sha256(folder / "weights.bin")

    again = uploads.upload("aws", "models", "sentiment", folder, "w", said.append)
    assert (again.uri, again.uploaded, again.skipped) == (first.uri, 0, 2)

    (folder / "weights.bin").write_bytes(b"\x01" * 2048)
    changed = uploads.upload("aws", "models", "sentiment", folder, "w", said.append)
    assert changed.uri != first.uri and changed.uploaded == 2


def test_a_missing_or_empty_model_folder_names_the_field(tmp_path):
    with pytest.raises(UserError, match=r"mlkit.yaml: apis\[0\].model: .*missing is not a folder"):
        uploads.folder_files(tmp_path / "missing", "mlkit.yaml: apis[0].model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"is empty \(or .mlkitignore leaves out every file\); put the model files there"):
        uploads.folder_files(tmp_path / "empty", "mlkit.yaml: apis[0].model")


def test_gcs_upload_is_content_addressed_and_skips_what_is_there(gcs, tmp_path):
    from google.cloud import storage

    folder = model_folder(tmp_path)
    first = uploads.upload("gcp", "models", "sentiment", folder, "w", lambda _: None)
    assert first.uri.startswith("gs://models/sentiment/") and (first.uploaded, first.skipped) == (2, 0)
    prefix = first.uri.removeprefix("gs://models/")
    blobs = {b.name: b for b in storage.Client().list_blobs("models")}
    assert sorted(blobs) == [prefix + "tokenizer/vocab.txt", prefix + "weights.bin"]
    assert blobs[prefix + "weights.bin"].metadata["sha256"] == uploads.sha256(folder / "weights.bin")
    again = uploads.upload("gcp", "models", "sentiment", folder, "w", lambda _: None)
    assert (again.uri, again.uploaded, again.skipped) == (first.uri, 0, 2)


def test_upload_leaves_secrets_out_and_refuses_links_leading_outside(s3, tmp_path, sentinel):
    project = tmp_path / "proj"
    folder = project / "model"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 16)
    for secret in ("id_rsa", ".env", "server.pem", "credentials", "terraform.tfstate"):
        (folder / secret).write_text("planted\n")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "tmp.bin").write_bytes(b"x")
    (project / ".mlkitignore").write_text("model/scratch/\n!id_rsa\n")
    result = uploads.upload("aws", "models", "sentiment", folder, "w", lambda _: None, root=project)
    keys = [o["Key"].removeprefix(result.uri.removeprefix("s3://models/")) for o in s3.list_objects_v2(Bucket="models")["Contents"]]
    assert keys == ["weights.bin"]

    (folder / "tokenizer").symlink_to(sentinel.root / "secrets")
    with pytest.raises(UserError, match=rf"^{folder / 'tokenizer'}: a symlink to {sentinel.root / 'secrets'}, outside {project}"):
        uploads.upload("aws", "models", "sentiment", folder, "w", lambda _: None, root=project)
    (folder / "tokenizer").unlink()
    (project / "linked").symlink_to(sentinel.root)  # the model folder itself is a link leading out
    with pytest.raises(UserError, match=rf"^mlkit.yaml: apis\[0\].model: {project / 'linked'} leads through a symlink to {sentinel.root}"):
        uploads.folder_files(project / "linked", "mlkit.yaml: apis[0].model", project)
    sentinel.assert_untouched()


def test_a_link_in_the_model_folder_to_a_secret_of_the_project_is_refused(s3, tmp_path):
    """`model/vocab.bin -> .mlkit/secrets/API.key` once uploaded the key: the rules matched the link's path only."""
    project = tmp_path / "proj"
    folder = project / "model"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 16)
    (project / ".mlkit" / "secrets").mkdir(parents=True)
    (project / ".mlkit" / "secrets" / "API.key").write_text("sk-planted\n")
    (folder / "vocab.bin").symlink_to(project / ".mlkit" / "secrets" / "API.key")
    with pytest.raises(UserError, match=rf"^{folder / 'vocab.bin'}: a symlink to .mlkit/secrets/API.key, which mlkit leaves out"):
        uploads.upload("aws", "models", "sentiment", folder, "w", lambda _: None, root=project)
    assert "Contents" not in s3.list_objects_v2(Bucket="models")
    (folder / "tokenizer").symlink_to(project / ".git", target_is_directory=True)  # a folder link: checked as a folder
    (project / ".git").mkdir()
    (project / ".git" / "config").write_text("[remote]\n")
    (project / ".mlkitignore").write_text("model/vocab.bin\n")
    with pytest.raises(UserError, match=rf"^{folder / 'tokenizer'}: a symlink to .git, which mlkit leaves out"):
        uploads.upload("aws", "models", "sentiment", folder, "w", lambda _: None, root=project)
    (folder / "tokenizer").unlink()
    result = uploads.upload("aws", "models", "sentiment", folder, "w", lambda _: None, root=project)
    assert [o["Key"].removeprefix(result.uri.removeprefix("s3://models/")) for o in s3.list_objects_v2(Bucket="models")["Contents"]] == ["weights.bin"]
