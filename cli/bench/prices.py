"""The price table (prices.yaml beside this file, or one the user passes): node shape and $/hour."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError, quoted, shown

DEFAULT = Path(__file__).with_name("prices.yaml")
MAX_BYTES = 2**20  # the kit's table is a few KiB


@dataclass(frozen=True)
class NodeType:
    name: str
    vcpu: float
    memory_gib: float
    on_demand: float
    spot: float
    accelerators: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    taken: str
    hours_per_month: float
    types: dict[str, NodeType]
    source: Path


def load(path: Path = DEFAULT) -> Table:
    """Read and check a price table; a bad entry is one line naming the file, the type and the field."""
    import yaml

    from .. import regularfile
    from ..spec import yamlsafe

    # Rules: a path option is a regular file where one is expected (a FIFO or /dev/zero is one line,
    # opened without blocking), every byte read is bounded, and the YAML is composed with the spec's
    # bounds (aliases, depth, digits), not yaml.safe_load.
    try:
        raw = yamlsafe.compose(regularfile.read(path, MAX_BYTES).decode("utf-8"))[1]
    except regularfile.NotRegular:
        raise UserError(f"{path}: not a regular file; --prices takes a YAML file laid out like mlkit's cli/bench/prices.yaml") from None
    except regularfile.TooLarge as exc:
        raise UserError(f"{path}: {exc.size:,} bytes; a price table is at most {MAX_BYTES // 2**20} MiB") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the price table: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start + 1}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("types"), dict):
        raise UserError(f"{path}: a price table needs `taken`, `hours_per_month` and a `types:` mapping (see mlkit's cli/bench/prices.yaml)")
    types = {}
    for name, entry in raw["types"].items():
        types[str(name)] = _node_type(path, str(name), entry)
    hours = raw.get("hours_per_month", 730)
    if not _number(hours) or not 0 < hours <= 744:
        raise UserError(f"{path}: hours_per_month must be a number of hours in a month (above 0, at most 744), got {quoted(hours, 60)}")
    return Table(shown(raw.get("taken", "unknown"), 200), float(hours), types, path)


def _number(value: Any) -> bool:
    """A finite number: YAML's .nan and .inf are floats too, and would make every cost nan or inf."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _node_type(path: Path, name: str, entry: Any) -> NodeType:
    if not isinstance(entry, dict):
        raise UserError(f"{path}: types.{shown(name, 60)} must be a mapping with vcpu, memory_gib, on_demand and spot")
    for key in ("vcpu", "memory_gib", "on_demand", "spot"):
        if not _number(entry.get(key)) or entry[key] < 0:
            raise UserError(f"{path}: types.{shown(name, 60)}.{key} must be a finite number of at least 0, got {quoted(entry.get(key), 60)}")
    acc = entry.get("accelerators") or {}
    if not isinstance(acc, dict) or any(k not in ("nvidia", "neuron", "tpu") or not isinstance(v, int) or isinstance(v, bool) or v < 0 for k, v in acc.items()):
        raise UserError(f"{path}: types.{shown(name, 60)}.accelerators must map nvidia, neuron or tpu to a whole number, got {quoted(acc, 60)}")
    return NodeType(name, float(entry["vcpu"]), float(entry["memory_gib"]), float(entry["on_demand"]), float(entry["spot"]), dict(acc))
