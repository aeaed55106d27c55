"""Model upload against moto's S3: content-addressed prefixes, unchanged files skipped, clear errors."""

from __future__ import annotations

import boto3
import pytest

from mlkit.deploy import uploads
from mlkit.errors import UserError
from tests.conftest import aws_env


@pytest.fixture
def s3(moto, monkeypatch):
    for key, value in aws_env(moto).items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


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
    with pytest.raises(UserError, match="is empty; put the model files there"):
        uploads.folder_files(tmp_path / "empty", "mlkit.yaml: apis[0].model")


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """gcp-storage-emulator on 127.0.0.1: google-cloud-storage talks to it through STORAGE_EMULATOR_HOST."""
    from tests.conftest import local_server

    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
    with local_server(["gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"], tmp_path / "gcs.log") as port:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
        from google.cloud import storage

        storage.Client().create_bucket("models")
        yield


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
