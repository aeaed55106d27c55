"""The price table (prices.yaml beside this file, or one the user passes): node shape and $/hour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

DEFAULT = Path(__file__).with_name("prices.yaml")


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

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the price table: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("types"), dict):
        raise UserError(f"{path}: a price table needs `taken`, `hours_per_month` and a `types:` mapping (see mlkit's cli/bench/prices.yaml)")
    types = {}
    for name, entry in raw["types"].items():
        types[str(name)] = _node_type(path, str(name), entry)
    hours = raw.get("hours_per_month", 730)
    if not _number(hours) or hours <= 0:
        raise UserError(f"{path}: hours_per_month must be a positive number, got {hours!r}")
    return Table(str(raw.get("taken", "unknown")), float(hours), types, path)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _node_type(path: Path, name: str, entry: Any) -> NodeType:
    if not isinstance(entry, dict):
        raise UserError(f"{path}: types.{name} must be a mapping with vcpu, memory_gib, on_demand and spot")
    for key in ("vcpu", "memory_gib", "on_demand", "spot"):
        if not _number(entry.get(key)) or entry[key] < 0:
            raise UserError(f"{path}: types.{name}.{key} must be a number of at least 0, got {entry.get(key)!r}")
    acc = entry.get("accelerators") or {}
    if not isinstance(acc, dict) or any(k not in ("nvidia", "neuron", "tpu") or not isinstance(v, int) or isinstance(v, bool) or v < 0 for k, v in acc.items()):
        raise UserError(f"{path}: types.{name}.accelerators must map nvidia, neuron or tpu to a whole number, got {acc!r}")
    return NodeType(name, float(entry["vcpu"]), float(entry["memory_gib"]), float(entry["on_demand"]), float(entry["spot"]), dict(acc))
