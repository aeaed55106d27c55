"""Stand-ins for the clouds' buckets, shared by the upload tests and the pod-contract test."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import aws_env, local_server


@pytest.fixture
def s3(moto, monkeypatch):
    """moto's S3 with an empty bucket `models`; boto3 in this process talks to it."""
    for key, value in aws_env(moto).items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """gcp-storage-emulator on 127.0.0.1 with an empty bucket `models`: google-cloud-storage talks to it through STORAGE_EMULATOR_HOST."""
    pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
    with local_server(["tests.gcs_server", "start", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"], tmp_path / "gcs.log") as port:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
        from google.cloud import storage

        storage.Client().create_bucket("models")
        yield
