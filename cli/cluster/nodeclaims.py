"""Waiting for Karpenter's nodes to go before the controller does (`mlkit destroy`).

Deleting a NodePool makes Karpenter drain and terminate each of its NodeClaims' instances; the
NodeClaim goes once the instance is gone. Those instances are in no Terraform state, so if the
add-ons stack uninstalled Karpenter first (or the cluster stack removed its IAM role), they would be
left running: billed, and holding network interfaces in the subnets the cluster stack then fails to
delete. So destroy waits here, after the APIs' objects (NodePools included) are deleted, until no
NodeClaim of the project's NodePools is left, and stops with exit 3 if they outlast the wait.
EKS Auto Mode's nodes are NodeClaims too, of its `<pool>-auto` NodePools.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import ToolError
from .client import Cluster, NotFound
from .kinds import Kind

NODECLAIMS = Kind("karpenter.sh/v1", "NodeClaim", "nodeclaims", namespaced=False)
NODEPOOL_LABEL = "karpenter.sh/nodepool"
# Draining a node waits for its pods' grace periods (the APIs' are minutes at most) and EC2's termination.
WAIT_S = 900.0


def remaining(cluster: Cluster, nodepools: set[str]) -> list[str]:
    """Names of the NodeClaims of these NodePools still on the cluster (none where NodeClaims are not served)."""
    try:
        claims = cluster.list(NODECLAIMS, None)
    except NotFound:
        return []
    return sorted(c["metadata"]["name"] for c in claims if c["metadata"].get("labels", {}).get(NODEPOOL_LABEL) in nodepools)


def wait_gone(cluster: Cluster, nodepools: set[str], say: Callable[[str], None], timeout_s: float = WAIT_S, poll_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: list[str] | None = None
    while left := remaining(cluster, nodepools):
        if left != last:
            say(f"waiting for Karpenter to terminate {len(left)} node(s): {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}")
            last = left
        if time.monotonic() >= deadline:
            raise ToolError(
                f"{len(left)} NodeClaims of the deleted NodePools are still on the cluster after {timeout_s:.0f} s ({', '.join(left[:5])}); "
                "Karpenter has not terminated their instances. The add-ons and cluster stacks were left in place, so Karpenter "
                "can finish: see `kubectl describe nodeclaim`, then rerun `mlkit destroy`"
            )
        time.sleep(poll_s)
