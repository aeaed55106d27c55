"""A job's files under its output prefix, and how an input becomes shards there.

    job.json                 what the job is: id, API, item and shard counts, batch size, error policy
    shards/00000.jsonl       a shard's input: the input's own lines (JSONL), or one file URI per line
    results/00000.jsonl      one line per item done: {"index": N, "result": ...} (and "file" for files)
    errors/00000.jsonl       with `on_error: skip`: {"index": N, "line": L, "error": "..."} per item skipped
    done/00000.json          the shard's marker: written last, so a shard with a marker is whole
    work/00000/...           a running shard's committed parts and progress, removed when it is done

Item N is line N+1 of a JSONL input (every line is an item, a blank one included, which is then
malformed), so results join back to inputs by index.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .storage import StorageError, Store, join, open_store, split_uri

FORMS = ("jsonl", "files")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class JobError(Exception):
    """The job's input or its files are not usable; one line naming the file and the fix."""


@dataclass(frozen=True)
class Job:
    id: str
    api: str
    form: str  # jsonl: items are JSON lines; files: items are files, handed to the predictor as bytes
    input: str
    items: int
    shard_size: int
    batch_size: int
    on_error: str = "fail"
    fatal_errors: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None  # the job's predictor config, replacing the API's (`--config`)
    created: float = 0.0
    # The JSONL items were checked against the predictor's Input before the shards were written (`mlkit job run`, and
    # `submit` where it could import the class): the worker does not check them again (1.3 us an item for a one-field
    # model, validated a batch at once: 40% of the sentiment example's predictor). False: each pod checks every item.
    checked: bool = False

    @property
    def shards(self) -> int:
        return -(-self.items // self.shard_size) if self.items else 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def read(cls, store: Store) -> Job:
        raw = store.read("job.json")
        if raw is None:
            raise JobError(f"{join(store.uri, 'job.json')}: no such file; is this a job's output prefix?")
        try:
            value = json.loads(raw)
            job = cls(**value)
        except (ValueError, TypeError) as exc:
            raise JobError(f"{join(store.uri, 'job.json')}: not a job description ({' '.join(str(exc).split())[:200]})") from None
        if job.form not in FORMS or job.on_error not in ("fail", "skip") or min(job.shard_size, job.batch_size) < 1 or job.items < 0:
            raise JobError(f"{join(store.uri, 'job.json')}: holds values no job has (form {job.form!r}, on_error {job.on_error!r})")
        return job


def shard_key(kind: str, shard: int) -> str:
    ext = "json" if kind == "done" else "jsonl"
    return f"{kind}/{shard:05d}.{ext}"


def new_id(api: str) -> str:
    return f"{api[:40]}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def input_lines(uri: str) -> list[bytes]:
    """The lines of a JSONL input (a local file or an object), each an item; the last newline ends the last item."""
    try:
        store, key = split_uri(uri)
        raw = store.read(key)
    except StorageError as exc:
        raise JobError(f"--input {uri}: {exc}") from None
    if raw is None:
        raise JobError(f"--input {uri}: no such file")
    if not raw.strip():
        raise JobError(f"--input {uri}: is empty; a JSONL file has one item (a JSON value) per line")
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def input_files(uri: str) -> list[bytes]:
    """A folder or bucket prefix of files, each an item, as one JSON string (its URI) per line."""
    try:
        store = open_store(uri)
        keys = store.list()
    except StorageError as exc:
        raise JobError(f"--input {uri}: {exc}") from None
    if not keys:
        raise JobError(f"--input {uri}: holds no files; give a JSONL file, or a folder or prefix with one file per item")
    return [json.dumps(join(store.uri, key)).encode() for key in keys]


def prepare(out: Store, job: Job, lines: list[bytes], overwrite: bool = False) -> None:
    """Write the shards and then job.json under the output prefix; refuse a prefix holding another job's results."""
    existing = out.read("job.json")
    if existing is not None and not overwrite:
        try:
            other = json.loads(existing).get("id", "?")
        except (ValueError, AttributeError):
            other = "?"
        raise JobError(f"--output {out.uri}: already holds job {other}'s results; pick another prefix, or pass --overwrite to replace them")
    if existing is None and out.list() and not overwrite:
        raise JobError(f"--output {out.uri}: holds files that are not a job's; pick an empty prefix, or pass --overwrite to delete them")
    if existing is not None or out.list():
        for key in out.list():  # --overwrite (or a half-prepared prefix): nothing of the old job may mix in
            out.delete(key)
    for shard in range(job.shards):
        chunk = lines[shard * job.shard_size:(shard + 1) * job.shard_size]
        out.write(shard_key("shards", shard), b"\n".join(chunk) + b"\n")
    out.write("job.json", job.to_json())  # last: a prefix with job.json has all its shards
