"""Where a job's shards, results and markers live: a local folder, an S3 prefix or a GCS prefix.

Every write is atomic to a reader: a local file is written under a temporary name and renamed into
place; an object store's single put is all-or-nothing. That is what lets a killed worker leave
nothing half-written behind. Keys are relative `/`-separated paths under the store's root.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Protocol

_KEY = re.compile(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*")
_BUCKET_URI = re.compile(r"(s3|gs)://([a-z0-9][a-z0-9._-]{1,61}[a-z0-9])(/.*)?")


class StorageError(Exception):
    """A store cannot be reached or refuses an operation; the message names the URI."""


class Store(Protocol):
    uri: str

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""

    def write(self, key: str, data: bytes) -> None:
        """Replace the object as a whole: a reader sees the old bytes or the new ones, never a part."""

    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    def list(self, prefix: str = "") -> list[str]:
        """Keys under prefix (a folder, `shards/`), sorted."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise StorageError(f"{key!r} is not a key this store accepts (letters, digits, `_.=-` and `/`, no `..`)")
    return key


def join(uri: str, key: str) -> str:
    return f"{uri.rstrip('/')}/{key}"


def open_store(uri: str) -> Store:
    """`s3://bucket/prefix`, `gs://bucket/prefix`, or a local folder (created on first write)."""
    if "://" not in uri:
        return LocalStore(Path(uri))
    found = _BUCKET_URI.fullmatch(uri)
    if not found:
        raise StorageError(f"{uri}: not a bucket URI; use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or a local folder")
    scheme, bucket, path = found.group(1), found.group(2), (found.group(3) or "").strip("/")
    if path:
        check_key(path)
    return S3Store(bucket, path) if scheme == "s3" else GCSStore(bucket, path)


def split_uri(uri: str) -> tuple[Store, str]:
    """The store holding the object at `uri` and its key: for reading one input file."""
    if "://" in uri:
        head, _, key = uri.rpartition("/")
        return open_store(head), check_key(key)
    path = Path(uri)
    return LocalStore(path.parent), check_key(path.name)


# Tries of a local write whose folder another writer's delete prunes meanwhile (each try is a few syscalls).
_PRUNE_RACE_TRIES = 50


class LocalStore:
    def __init__(self, root: Path):
        self.root = root
        self.uri = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{self._path(key)}: {exc.strerror or exc}") from None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        for attempt in range(_PRUNE_RACE_TRIES):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "xb") as out:
                    out.write(data)
                os.replace(tmp, path)  # a reader sees the old file or the new one, never a part
                return
            except (FileNotFoundError, FileExistsError):
                # Another worker's delete pruned a folder it had emptied (work/, say) while this one made it or before
                # the file went in (mkdir's exist_ok then finds no folder and raises FileExistsError); once the file is
                # in it, the folder is not empty and stays: make it again. (The temporary name is random: never a clash.)
                tmp.unlink(missing_ok=True)
                if attempt == _PRUNE_RACE_TRIES - 1:
                    raise StorageError(f"{path}: its folder kept vanishing while written") from None
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"{path}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Folders exist only for their files here, as prefixes do in a bucket: an emptied one goes too.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):  # temporary names are dot files
                out.append(path.relative_to(self.root).as_posix())
        return sorted(out)


class S3Store:
    """boto3's S3 client; AWS_ENDPOINT_URL (moto, MinIO) and the pod's web identity come from the environment."""

    def __init__(self, bucket: str, prefix: str):
        try:
            import boto3
        except ImportError:
            raise StorageError("s3:// needs boto3: pip install boto3") from None
        self.bucket, self.prefix = bucket, prefix
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self.client: Any = boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    def _fail(self, what: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"{join(self.uri, key)}: {what} failed: {' '.join(str(exc).split())[:300]}")

    def read(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def write(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._fail("delete", key, exc) from None

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(f"{self.prefix}/") if self.prefix else 0
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out += [item["Key"][cut:] for item in page.get("Contents", [])]
        except Exception as exc:
            raise self._fail("list", prefix, exc) from None
        return sorted(out)


class GCSStore:
    """google-cloud-storage; STORAGE_EMULATOR_HOST and the pod's workload identity come from the environment."""

    def __init__(self, bucket: str, prefix: str):
        try:
            from google.cloud import storage
        except ImportError:
            raise StorageError("gs:// needs google-cloud-storage: pip install google-cloud-storage") from None
        self.prefix = prefix
        self.uri = f"gs://{bucket}/{prefix}".rstrip("/")
        self.bucket: Any = storage.Client().bucket(bucket)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    def _fail(self, what: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"{join(self.uri, key)}: {what} failed: {' '.join(str(exc).split())[:300]}")

    def read(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self.bucket.blob(self._key(key)).download_as_bytes())
        except NotFound:
            return None
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def write(self, key: str, data: bytes) -> None:
        try:
            self.bucket.blob(self._key(key)).upload_from_string(data)
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(self._key(key)).delete()
        except NotFound:
            pass
        except Exception as exc:
            raise self._fail("delete", key, exc) from None

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(f"{self.prefix}/") if self.prefix else 0
        try:
            return sorted(blob.name[cut:] for blob in self.bucket.client.list_blobs(self.bucket, prefix=full))
        except Exception as exc:
            raise self._fail("list", prefix, exc) from None
