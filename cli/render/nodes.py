"""What every node of a pool carries, on both clouds: labels (the manifests select pools by them) and
taints in the Terraform providers' enum form."""

from __future__ import annotations

from typing import Any

from .. import labels
from ..spec import accelerators as acc
from ..spec.schema import NodePool

# The AWS and Google providers both spell taint effects this way.
TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def node_labels(pool: NodePool, accel: acc.Accelerator) -> dict[str, str]:
    return {
        labels.POOL: pool.name,
        labels.ACCELERATOR: accel.device or "none",
        labels.ACCELERATOR_KIND: accel.kind,
        **({labels.CAPACITY: "spot"} if pool.spot else {}),
        **pool.labels,
    }


def taints(pool: NodePool) -> list[dict[str, Any]]:
    return [{"key": t.key, "value": t.value or "", "effect": TAINT_EFFECT[t.effect]} for t in pool.taints]
