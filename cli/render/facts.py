"""Deploy facts: values that exist only once something was built, uploaded or created.

The AWS account id (in role ARNs, registry and bucket names), the image tag of each API (a hash of
its build context) and the bucket prefix its local model folder went to are not in mlkit.yaml. The
deploy steps record them in `.mlkit/deploy.json`; rendering reads them, so that a deploy shows up
in review as a small diff of the manifests (a new tag, a new model prefix). Until a value is known
the manifests carry a placeholder in capitals that cannot pull, fetch or assume anything.

The record also keeps each API's revisions (one per deploy that changed something, see
cli/deploy/revisions.py) and the pins `mlkit rollback` sets: while an API is pinned to one of its
revisions, that revision's image and model are what the manifests carry, whatever the rest says.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeGuard

from .. import jsonbounds, projectfs
from ..errors import UserError

REL = ".mlkit/deploy.json"
# The way out of a damaged record: without it the manifests go back to placeholders that cannot pull,
# fetch or assume anything (nothing half-right reaches a cluster), and the next apply records the
# values again from the registry and the bucket, which are the truth they were copied from.
WAY_OUT = (
    "restore it from git (`git checkout -- .mlkit/deploy.json`), or delete it: "
    "the manifests then carry placeholders until `mlkit apply --only apis` records the values again"
)

# Values from here are written into manifests, so each must have the shape its source gives it;
# anything else (a newline, a quote, a YAML indicator) could change the manifest around it.
_NAME = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # an API name (or <api>-canary): a DNS label
SHAPES = {
    "aws_account_id": (re.compile(r"[0-9]{12}"), "12 digits"),
    "images": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"), "a Docker image tag"),
    # s3://bucket/prefix/ or gs://bucket/prefix/ as `models.upload` makes them: safe key characters only.
    "models": (re.compile(r"(?:s3|gs)://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/(?:(?!\.\.?/)[A-Za-z0-9._-]+/)*"), "s3://BUCKET/PREFIX/ or gs://BUCKET/PREFIX/"),
}
MAX_BYTES = 1024 * 1024
KEEP = 50  # revisions kept per API: the record stays small enough to review and to stay under MAX_BYTES
# A revision's model is the URI its pods fetched: an uploaded prefix (SHAPES["models"]) or the spec's own
# bucket URI, which the spec checks less strictly; either way no control character, and it is quoted
# wherever it is written.
_REVISION_MODEL = re.compile(r"(?:s3|gs)://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](?:/[^\x00-\x1f\x7f]{0,1000})?")
_HASH = re.compile(r"[0-9a-f]{16}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 repositories
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
FIELDS = (*SHAPES, "revisions", "pins")


@dataclass
class Revision:
    """One deploy of an API: what its pods ran, from which spec entry and commit, and when."""

    number: int  # 1, 2, 3... per API, never reused
    time: str  # UTC, 2026-11-29T23:10:00Z
    image: str | None  # image tag; None for engine APIs (they run the engine's published image)
    model: str | None  # model URI the pods fetched; None without one (hf_model)
    config_hash: str  # 16 hex digits of the API's config, as the pods' config-hash annotation
    spec_hash: str  # 16 hex digits of the API's entry in mlkit.yaml, as written
    git_commit: str | None  # the project's commit; None outside a git repository
    rolled_back_from: int | None = None  # a rollback: the revision that was current
    rolled_back_to: int | None = None  # a rollback: the revision whose image and model it restored


REVISION_FIELDS = tuple(Revision.__dataclass_fields__)
ROLLBACK_FIELDS = ("rolled_back_from", "rolled_back_to")  # the only ones a revision may leave out


@dataclass
class Facts:
    aws_account_id: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # API name -> image tag
    models: dict[str, str] = field(default_factory=dict)  # API (or API-canary) name -> uploaded model URI
    revisions: dict[str, list[Revision]] = field(default_factory=dict)  # API name -> its last KEEP revisions, oldest first
    pins: dict[str, int] = field(default_factory=dict)  # API name -> the rollback revision whose image and model run until the next apply

    def pinned(self, api: str) -> Revision | None:
        number = self.pins.get(api)
        return next((r for r in self.revisions.get(api, []) if r.number == number), None) if number else None

    def image_tag(self, api: str) -> str | None:
        """The image tag the manifests of API carry: a rollback's pin first, then the last build."""
        pinned = self.pinned(api)
        return pinned.image if pinned and pinned.image else self.images.get(api)

    def pinned_model(self, name: str) -> str | None:
        """The model URI a rollback pinned for API `name` (never for its canary track), or None."""
        pinned = self.pinned(name)
        return pinned.model if pinned else None


def _bad(problem: str) -> UserError:
    return UserError(f"{REL}: {problem}; {WAY_OUT}")


def _check(data: object) -> Facts:
    if not isinstance(data, dict):
        raise _bad("expected an object with aws_account_id, images and models")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    account = data.get("aws_account_id")
    pattern, shape = SHAPES["aws_account_id"]
    if account is not None and not (isinstance(account, str) and pattern.fullmatch(account)):
        raise _bad(f"aws_account_id must be {shape}, not {account!r:.80}")
    maps: dict[str, dict[str, str]] = {}
    for name in ("images", "models"):
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise _bad(f"{name} must be an object of API name -> {SHAPES[name][1]}")
        pattern, shape = SHAPES[name]
        for api, item in value.items():
            if not re.fullmatch(_NAME, api):
                raise _bad(f"{name}: {api!r:.80} is not an API name")
            if not (isinstance(item, str) and pattern.fullmatch(item)):
                raise _bad(f"{name}.{api} must be {shape}, not {item!r:.80}")
        maps[name] = value
    revisions = _check_revisions(data.get("revisions", {}))
    return Facts(aws_account_id=account, images=maps["images"], models=maps["models"], revisions=revisions,
                 pins=_check_pins(data.get("pins", {}), revisions))


def _check_revisions(value: object) -> dict[str, list[Revision]]:
    if not isinstance(value, dict):
        raise _bad("revisions must be an object of API name -> list of revisions")
    out: dict[str, list[Revision]] = {}
    for api, items in value.items():
        if not re.fullmatch(_NAME, api):
            raise _bad(f"revisions: {api!r:.80} is not an API name")
        if not isinstance(items, list) or len(items) > KEEP:
            raise _bad(f"revisions.{api} must be a list of at most {KEEP} revisions, oldest first")
        out[api] = []
        for i, item in enumerate(items):
            out[api].append(_check_revision(f"revisions.{api}[{i}]", item, out[api][-1].number if out[api] else 0))
    return out


def _check_revision(where: str, item: object, previous: int) -> Revision:
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object with {', '.join(REVISION_FIELDS)}")
    unknown = sorted(set(item) - set(REVISION_FIELDS))
    if unknown:
        raise _bad(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(REVISION_FIELDS)})")
    missing = [name for name in REVISION_FIELDS if name not in item and name not in ROLLBACK_FIELDS]
    if missing:
        raise _bad(f"{where}: {missing[0]} is missing")
    number = item["number"]
    if not _is_int(number) or number <= previous:
        raise _bad(f"{where}.number must be a whole number above {previous} (the one before it), not {number!r:.80}")
    checks: list[tuple[str, re.Pattern[str], str, bool]] = [
        ("time", _TIME, "a UTC time such as 2026-11-29T23:10:00Z", False),
        ("image", SHAPES["images"][0], "a Docker image tag or null", True),
        ("model", _REVISION_MODEL, "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX without control characters, or null", True),
        ("config_hash", _HASH, "16 lowercase hex digits", False),
        ("spec_hash", _HASH, "16 lowercase hex digits", False),
        ("git_commit", _COMMIT, "a 40 or 64 hex digit git commit, or null", True),
    ]
    for name, pattern, shape, nullable in checks:
        value = item[name]
        if not ((value is None and nullable) or (isinstance(value, str) and pattern.fullmatch(value))):
            raise _bad(f"{where}.{name} must be {shape}, not {value!r:.80}")
    back = (item.get("rolled_back_from"), item.get("rolled_back_to"))
    if back != (None, None) and not all(_is_int(n) and 1 <= n < number for n in back):
        raise _bad(f"{where}: rolled_back_from and rolled_back_to must both be earlier revision numbers, or both null; not {back!r:.80}")
    return Revision(
        number=number, time=item["time"], image=item["image"], model=item["model"], config_hash=item["config_hash"],
        spec_hash=item["spec_hash"], git_commit=item["git_commit"], rolled_back_from=item.get("rolled_back_from"),
        rolled_back_to=item.get("rolled_back_to"),
    )


def _check_pins(value: object, revisions: dict[str, list[Revision]]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _bad("pins must be an object of API name -> revision number")
    for api, number in value.items():
        if not any(r.number == number and r.rolled_back_to is not None for r in revisions.get(api, [])) or not _is_int(number):
            raise _bad(f"pins.{api:.80} must be the number of a rollback revision in revisions.{api:.80}, not {number!r:.80}")
    return dict(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def load(root: Path) -> Facts:
    try:
        text = projectfs.read_text(root, REL)
    except UserError as exc:  # a link, a folder, a binary file: the same way out
        raise UserError(f"{exc.message}; or {WAY_OUT}") from None
    if text is None:
        return Facts()
    if len(text) > MAX_BYTES:
        raise _bad(f"{len(text)} characters, far more than a deploy record holds")
    try:
        data = jsonbounds.loads(text)  # numbers and nesting bounded: a 5000-digit integer was a traceback
    except jsonbounds.BadJson as exc:
        raise _bad(str(exc)) from None
    return _check(data)


def save(root: Path, facts: Facts) -> None:
    _check(asdict(facts))  # never write what load would refuse
    text = _dump(facts)
    # Many APIs with full histories could outgrow MAX_BYTES: the longest histories give up their
    # oldest revisions first (the current one, which a pin always is, stays).
    while len(text) > MAX_BYTES and any(len(kept) > 1 for kept in facts.revisions.values()):
        longest = max(len(kept) for kept in facts.revisions.values())
        for kept in facts.revisions.values():
            if len(kept) == longest:
                del kept[0]
        text = _dump(facts)
    projectfs.write_text(root, REL, text)


def _dump(facts: Facts) -> str:
    return json.dumps(asdict(facts), indent=2, sort_keys=True) + "\n"
