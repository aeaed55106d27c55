"""Shared GPUs on EKS: the NVIDIA device plugin's sharing configs, and the node labels that pick them.

GKE shares a pool's GPUs itself (the node pool's gpu_sharing_config, terraform/gcp/node-pool); on EKS
the NVIDIA device plugin does, from a config file. The add-ons stack's chart gets one named config per
shared pool in `config.map`; the plugin's config-manager sidecar on each node reads the node's
`nvidia.com/device-plugin.config` label and loads the config of that name, so every node of a shared
pool carries the pool's name there (node group labels, or the Karpenter NodePool's template labels).

Facts from NVIDIA/k8s-device-plugin, the chart mlkit pins (v0.20.0), kept with their paths in
tests/render/data/nvidia-device-plugin-sharing.json: cmd/config-manager/main.go picks the labelled config, else
`config.default`, else the fallback strategies, whose `single` would hand the only config in the map
to every unlabelled GPU node, so mlkit always names a default that shares nothing (`no_sharing`, a
name no pool can take: pool names are DNS labels). api/config/v1 `sharing.timeSlicing` and
`sharing.mps` list `resources` with `replicas`; the chart's MPS control daemon runs only on nodes
labelled `nvidia.com/mps.capable=true` (templates/daemonset-mps-control-daemon.yml), a label
gpu-feature-discovery would set, which the chart leaves off, so mlkit's MPS pools carry it.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..spec.schema import NodePool, Spec

CONFIG_LABEL = "nvidia.com/device-plugin.config"
MPS_CAPABLE_LABEL = "nvidia.com/mps.capable"
DEFAULT_CONFIG = "no_sharing"
RESOURCE = "nvidia.com/gpu"
_STRATEGY_KEY = {"time-slicing": "timeSlicing", "mps": "mps"}


def node_labels(pool: NodePool) -> dict[str, str]:
    """Labels every EKS node of the pool carries so that the device plugin shares its GPUs."""
    if pool.gpu_sharing is None:
        return {}
    out = {CONFIG_LABEL: pool.name}
    if pool.gpu_sharing.strategy == "mps":
        out[MPS_CAPABLE_LABEL] = "true"
    return out


def _config(pool: NodePool | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "none"}}
    if pool is not None and pool.gpu_sharing is not None:
        doc["sharing"] = {
            _STRATEGY_KEY[pool.gpu_sharing.strategy]: {
                # The shares keep the name nvidia.com/gpu, so the APIs' pods ask as on any GPU pool; one
                # pod asking for two shares of a GPU is refused (it would get no more of the GPU).
                "renameByDefault": False,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": RESOURCE, "replicas": pool.gpu_sharing.replicas_per_gpu}],
            }
        }
    return doc


def device_plugin_configs(spec: Spec) -> dict[str, str]:
    """The chart's `config.map`: config file text by name; empty when no pool shares its GPUs."""
    shared = [p for p in spec.cluster.node_pools if p.gpu_sharing is not None]
    if not shared:
        return {}
    docs = {DEFAULT_CONFIG: _config(None)} | {p.name: _config(p) for p in shared}
    return {name: yaml.safe_dump(doc, sort_keys=False) for name, doc in docs.items()}
