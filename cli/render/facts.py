"""Deploy facts: values that exist only once something was built, uploaded or created.

The AWS account id (in role ARNs, registry and bucket names), the image tag of each API (a hash of
its build context) and the bucket prefix its local model folder went to are not in mlkit.yaml. The
deploy steps record them in `.mlkit/deploy.json`; rendering reads them, so that a deploy shows up
in review as a small diff of the manifests (a new tag, a new model prefix). Until a value is known
the manifests carry a placeholder in capitals that cannot pull, fetch or assume anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import projectfs
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


@dataclass
class Facts:
    aws_account_id: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # API name -> image tag
    models: dict[str, str] = field(default_factory=dict)  # API (or API-canary) name -> uploaded model URI


def _bad(problem: str) -> UserError:
    return UserError(f"{REL}: {problem}; {WAY_OUT}")


def _check(data: object) -> Facts:
    if not isinstance(data, dict):
        raise _bad("expected an object with aws_account_id, images and models")
    unknown = sorted(set(data) - set(SHAPES))
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r} (fields: {', '.join(SHAPES)})")
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
    return Facts(aws_account_id=account, images=maps["images"], models=maps["models"])


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
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _bad(f"not valid JSON ({exc})") from None
    return _check(data)


def save(root: Path, facts: Facts) -> None:
    _check(asdict(facts))  # never write what load would refuse
    projectfs.write_text(root, REL, json.dumps(asdict(facts), indent=2, sort_keys=True) + "\n")
