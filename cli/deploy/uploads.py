"""Upload a local model folder to the model bucket, content-addressed.

The folder goes to `<bucket>/<api>/<digest>/`, where the digest covers every file's path and
SHA-256: an unchanged folder maps to the same prefix (nothing to upload, nothing to roll out), a
changed one to a new prefix (the manifests change, pods roll, the old version stays for rollback
until the bucket's lifecycle rule expires it). Within a prefix, a file already there with the same
SHA-256 (kept in the object's metadata) is skipped, so an interrupted upload resumes.

Which files go is decided by files.py, as for image build contexts: the project's .mlkitignore and
the built-in rules keep secrets and state out, and a symlink leading outside the project is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError, UserError
from . import files as project_files


@dataclass
class Upload:
    uri: str
    uploaded: int
    skipped: int


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_files(folder: Path, where: str, root: Path | None = None) -> list[tuple[str, Path, str]]:
    """The files to upload from folder: (path in the bucket prefix, file, SHA-256).

    root is the project: its .mlkitignore applies, matched from the project's top, and links may
    lead anywhere inside it. A folder outside the project is its own boundary and rules' base.
    """
    if not folder.is_dir():
        raise UserError(f"{where}: {folder} is not a folder; point `model:` at the folder that holds the model files, or at s3:// / gs://")
    inside = root is not None and folder.resolve().is_relative_to(root.resolve())
    if root is not None and not inside and Path(os.path.abspath(folder)).is_relative_to(root.absolute()):
        raise UserError(f"{where}: {folder} leads through a symlink to {folder.resolve()}, outside the project {root}; copy the model into the project or point `model:` at it directly")
    boundary = root.resolve() if inside else folder.resolve()
    ignore = project_files.rules(root if inside else folder)
    base = root.resolve() if inside else folder.resolve()
    files = [(rel, p, sha256(p)) for rel, p in project_files.walk(folder.resolve(), boundary, ignore, base)]
    if not files:
        raise UserError(f"{where}: {folder} is empty (or {project_files.IGNORE_FILE} leaves out every file); put the model files there")
    return files


def digest(files: list[tuple[str, Path, str]]) -> str:
    h = hashlib.sha256()
    for rel, _, file_hash in files:
        h.update(f"{rel}\0{file_hash}\n".encode())
    return h.hexdigest()[:16]


def upload(cloud: str, bucket: str, name: str, folder: Path, where: str, say: Callable[[str], None], root: Path | None = None) -> Upload:
    files = folder_files(folder, where, root)
    prefix = f"{name}/{digest(files)}/"
    put = _s3 if cloud == "aws" else _gcs
    uploaded, skipped = put(bucket, prefix, files, say)
    scheme = "s3" if cloud == "aws" else "gs"
    return Upload(f"{scheme}://{bucket}/{prefix}", uploaded, skipped)


def _s3(bucket: str, prefix: str, files, say) -> tuple[int, int]:
    from ..cluster.credentials import aws_call, require_boto3

    boto3 = require_boto3()
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    uploaded = skipped = 0
    with aws_call(f"uploading the model to s3://{bucket}/{prefix}"):
        for rel, path, file_hash in files:
            key = prefix + rel
            try:
                if s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256") == file_hash:
                    skipped += 1
                    continue
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                    raise
            say(f"  uploading {rel} ({path.stat().st_size:,} bytes) to s3://{bucket}/{key}")
            s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": file_hash}})
            uploaded += 1
    s3.close()
    return uploaded, skipped


def _gcs(bucket: str, prefix: str, files, say) -> tuple[int, int]:
    try:
        from google.api_core import exceptions
        from google.cloud import storage
    except ImportError:
        raise UserError("uploading to GCS needs the Google libraries: pip install 'mlkit[gcp]'") from None
    target = storage.Client().bucket(bucket)
    uploaded = skipped = 0
    try:
        for rel, path, file_hash in files:
            blob = target.blob(prefix + rel)
            if blob.exists():
                blob.reload()
                if (blob.metadata or {}).get("sha256") == file_hash:
                    skipped += 1
                    continue
            say(f"  uploading {rel} ({path.stat().st_size:,} bytes) to gs://{bucket}/{prefix}{rel}")
            blob.metadata = {"sha256": file_hash}
            blob.upload_from_filename(str(path))
            uploaded += 1
    except exceptions.GoogleAPIError as exc:
        raise ToolError(f"uploading the model to gs://{bucket}/{prefix}: {exc}") from None
    return uploaded, skipped
