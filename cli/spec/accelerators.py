"""What an instance or machine type carries, looked up in the kit's table (accelerators.yaml)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Kind = Literal["none", "nvidia", "neuron", "tpu"]


@dataclass(frozen=True)
class Accelerator:
    """The accelerators on one node: `count` devices (GPUs, Neuron devices, TPU chips)."""

    kind: Kind = "none"
    device: str = ""
    count: int = 0
    neuron_cores: int = 0


NONE = Accelerator()


@functools.cache
def table() -> dict[str, Any]:
    """accelerators.yaml as loaded: plain YAML data, shaped as the file is."""
    with open(Path(__file__).with_name("accelerators.yaml"), encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def aws_family(instance_type: str) -> tuple[str, str]:
    family, _, size = instance_type.partition(".")
    return family, size


def aws_instance(instance_type: str) -> Accelerator | None:
    """The accelerator of an AWS instance type; NONE for CPU families, None for a known family's unknown size."""
    family, size = aws_family(instance_type)
    aws = table()["aws"]
    if family in aws["nvidia"]:
        entry = aws["nvidia"][family]
        if size not in entry["sizes"]:
            return None
        return Accelerator("nvidia", entry["device"], entry["sizes"][size])
    if family in aws["neuron"]:
        entry = aws["neuron"][family]
        if size not in entry["sizes"]:
            return None
        devices = entry["sizes"][size]
        return Accelerator("neuron", entry["device"], devices, devices * entry["cores_per_device"])
    return NONE


def aws_sizes(family: str) -> list[str]:
    aws = table()["aws"]
    entry = aws["nvidia"].get(family) or aws["neuron"].get(family) or {"sizes": {}}
    return [f"{family}.{size}" for size in entry["sizes"]]


def is_aws_accelerated_family(machine_type: str) -> bool:
    family, _ = aws_family(machine_type)
    aws = table()["aws"]
    return family in aws["nvidia"] or family in aws["neuron"]


def gcp_gpu_machine(machine_type: str) -> dict[str, Any] | None:
    machine: dict[str, Any] | None = table()["gcp"]["gpu_machines"].get(machine_type)
    return machine


def gcp_n1_gpus() -> dict[str, list[int]]:
    attachable: dict[str, list[int]] = table()["gcp"]["n1_attachable"]
    return attachable


def tpu_versions() -> dict[str, dict[str, Any]]:
    versions: dict[str, dict[str, Any]] = table()["gcp"]["tpu"]
    return versions


def tpu_machine_versions() -> dict[str, str]:
    """TPU machine type -> TPU version."""
    return {mt: v for v, e in tpu_versions().items() for mt in e["machine_types"]}


def topology_chips(topology: str) -> int:
    return math.prod(int(d) for d in topology.split("x"))


@dataclass(frozen=True)
class TpuSlice:
    version: str
    topology: str
    machine_type: str
    chips_per_vm: int
    nodes: int
    accelerator: str

    @property
    def multi_host(self) -> bool:
        return self.nodes > 1


def tpu_slice(version: str, topology: str) -> TpuSlice:
    """The VMs that make up a slice: one VM when the chips fit the largest machine type, else whole VMs of the multi-host type."""
    entry = tpu_versions()[version]
    chips = topology_chips(topology)
    for machine_type, per_vm in sorted(entry["machine_types"].items(), key=lambda kv: kv[1]):
        if per_vm == chips:
            return TpuSlice(version, topology, machine_type, per_vm, 1, entry["accelerator"])
    machine_type = entry["multi_host_machine_type"]
    per_vm = entry["machine_types"][machine_type]
    return TpuSlice(version, topology, machine_type, per_vm, chips // per_vm, entry["accelerator"])
