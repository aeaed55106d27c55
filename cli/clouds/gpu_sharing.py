"""GPUs shared between replicas (`cluster.node_pools[].gpu_sharing`): what a shared pool may be, and what
an API on it may ask for.

A shared GPU is offered to the scheduler as `replicas_per_gpu` devices of `nvidia.com/gpu`, so a pod
that asks for one gets one share. Neither GKE nor the NVIDIA device plugin lets a pod hold two shares
of one GPU usefully: GKE fails the pod ("at most 1 nvidia.com/gpu can be requested on GPU nodes", its
time-sharing guide), and the device plugin, with `failRequestsGreaterThanOne` as mlkit sets it, does
too. So a replica on a shared pool asks for exactly one share.

Facts (checked 2026-12-06):
- GKE: time-sharing on Standard clusters from 1.23.7-gke.1400, MPS from 1.27.7-gke.1088000; at most
  48 clients per GPU (cloud.google.com/kubernetes-engine/docs/how-to/timesharing-gpus and
  nvidia-mps-gpus). GKE's MPS workloads set `hostIPC: true` to talk to the node's MPS control daemon
  (its MPS guide's example and note), which Pod Security `restricted`, enforced on the APIs'
  namespace, forbids: so MPS is refused on GKE. The NVIDIA device plugin on EKS mounts the daemon's
  pipe and shared memory into the container itself, with no host namespace.
- CUDA MPS serves at most 48 clients per GPU on Volta and newer (docs.nvidia.com/deploy/mps).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import placement

if TYPE_CHECKING:
    from ..spec.problem import Loc, Problem
    from ..spec.schema import NodePool, Spec



def shares_per_gpu(pool: NodePool | None) -> int:
    """What one GPU of the pool is worth in `nvidia.com/gpu`: 1, or the replicas it is shared between."""
    return pool.gpu_sharing.replicas_per_gpu if pool is not None and pool.gpu_sharing is not None else 1


def check(spec: Spec) -> Iterator[Problem]:
    from ..spec.problem import Problem

    provisioning = spec.cluster.node_provisioning
    for i, pool in enumerate(spec.cluster.node_pools):
        sharing = pool.gpu_sharing
        if sharing is None:
            continue
        loc: Loc = ("cluster", "node_pools", i, "gpu_sharing")
        have = placement.pool_accelerator(pool, spec.cloud)
        if have.kind != "nvidia":
            what = {"tpu": "a TPU pool", "neuron": "a Neuron pool"}.get(have.kind, "a pool without GPUs")
            yield Problem(loc, f"'{pool.name}' is {what}; GPU sharing is for NVIDIA GPU pools (e.g. g5.xlarge, g2-standard-8): remove gpu_sharing")
            continue
        if spec.cloud == "aws" and provisioning not in ("node-groups", "karpenter"):
            # EKS Auto Mode runs its own NVIDIA device plugin, whose sharing config mlkit cannot set.
            yield Problem(loc, f"EKS Auto Mode runs its own NVIDIA device plugin, which has no sharing config; remove gpu_sharing or use "
                               f"node_provisioning: karpenter or node-groups (now: {provisioning})")
        if spec.cloud == "gcp" and sharing.strategy == "mps":
            yield Problem(loc + ("strategy",), "GKE's MPS needs pods with hostIPC: true to reach the node's MPS daemon, which the APIs' "
                                               "namespace forbids (Pod Security restricted); use strategy: time-slicing on GKE (MPS works on EKS)")
    yield from _apis(spec)


def _apis(spec: Spec) -> Iterator[Problem]:
    from ..spec.problem import Problem

    for i, api in enumerate(spec.apis):
        if not api.compute.gpu:
            continue
        pool = placement.pool_for(api, spec)
        if pool is None or pool.gpu_sharing is None:
            continue
        if api.compute.gpu > 1:
            yield Problem(("apis", i, "compute", "gpu"), f"pool '{pool.name}' shares its GPUs ({pool.gpu_sharing.strategy}), so compute.gpu counts "
                                                        "shares and a replica gets one: set gpu: 1, or run on a pool without gpu_sharing")
        if api.engine is not None:
            yield Problem(("apis", i, "node_pool"), f"pool '{pool.name}' shares its GPUs, and an engine takes most of a GPU's memory for its "
                                                   "cache: run engine APIs on a pool without gpu_sharing")
