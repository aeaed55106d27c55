"""Placement: which accelerator a pool's nodes carry, what an API asks for, and the pool it runs on.

One answer for every consumer: the spec rules (is there a pool that fits?), the manifests (selectors,
tolerations, resources), the dashboard (a GPU panel or not) and the image builder (which base image).
"""

from __future__ import annotations

from .spec import accelerators as acc
from .spec.schema import Api, NodePool, Spec


def pool_accelerator(pool: NodePool, cloud: str) -> acc.Accelerator:
    """What each node of a valid pool carries (the cloud module reads it)."""
    from . import clouds

    return clouds.named(cloud).pool_accelerator(pool)


def api_demand(api: Api) -> tuple[acc.Kind, int]:
    c = api.compute
    if c.gpu:
        return "nvidia", c.gpu
    if c.neuron_cores:
        return "neuron", c.neuron_cores
    if c.tpu_chips:
        return "tpu", c.tpu_chips
    return "none", 0


def fits(pool_acc: acc.Accelerator, kind: acc.Kind, amount: int) -> bool:
    if pool_acc.kind != kind:
        return False
    if kind == "none":
        return True
    if kind == "neuron":
        return amount <= pool_acc.neuron_cores
    if kind == "tpu":
        # A TPU workload owns all chips of its VM: asking for fewer leaves chips idle that nobody else can use.
        return amount == pool_acc.count
    return amount <= pool_acc.count


def pool_for(api: Api, spec: Spec) -> NodePool | None:
    """The pool an API runs on: the pinned one, else the first pool offering what it asks for."""
    kind, amount = api_demand(api)
    for pool in spec.cluster.node_pools:
        if api.node_pool == pool.name or (api.node_pool is None and fits(pool_accelerator(pool, spec.cloud), kind, amount)):
            return pool
    return None
