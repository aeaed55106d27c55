"""Deploy facts: values that exist only once something was built, uploaded or created.

The AWS account id (in role ARNs, registry and bucket names), the image tag of each API (a hash of
its build context) and the bucket prefix its local model folder went to are not in mlkit.yaml. The
deploy steps record them in `.mlkit/deploy.json`; rendering reads them, so that a deploy shows up
in review as a small diff of the manifests (a new tag, a new model prefix). Until a value is known
the manifests carry a placeholder in capitals that cannot pull, fetch or assume anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError

FILE = Path(".mlkit") / "deploy.json"


@dataclass
class Facts:
    aws_account_id: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # API name -> image tag
    models: dict[str, str] = field(default_factory=dict)  # API (or API-canary) name -> uploaded model URI


def load(root: Path) -> Facts:
    path = root / FILE
    if not path.exists():
        return Facts()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Facts(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: not a deploy record mlkit can read ({exc}); delete it and run `mlkit apply` to write it again") from None


def save(root: Path, facts: Facts) -> None:
    path = root / FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(facts), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
