"""The accelerator table: inference from instance and machine types, TPU slice shapes."""

from __future__ import annotations

import pytest

from mlkit.spec import accelerators as acc


@pytest.mark.parametrize(
    "itype, kind, count, cores",
    [
        ("m6i.large", "none", 0, 0),
        ("g5.xlarge", "nvidia", 1, 0),
        ("g5.12xlarge", "nvidia", 4, 0),
        ("p5.48xlarge", "nvidia", 8, 0),
        ("g4dn.metal", "nvidia", 8, 0),
        ("inf2.xlarge", "neuron", 1, 2),
        ("inf2.48xlarge", "neuron", 12, 24),
        ("trn1.32xlarge", "neuron", 16, 32),
        ("trn2.48xlarge", "neuron", 16, 128),
    ],
)
def test_aws_inference(itype, kind, count, cores):
    a = acc.aws_instance(itype)
    assert (a.kind, a.count, a.neuron_cores) == (kind, count, cores)


def test_unknown_size_of_known_family_is_not_guessed():
    assert acc.aws_instance("g5.3xlarge") is None


@pytest.mark.parametrize(
    "version, topology, machine, nodes",
    [
        ("v5e", "1x1", "ct5lp-hightpu-1t", 1),
        ("v5e", "2x4", "ct5lp-hightpu-8t", 1),
        ("v5e", "4x4", "ct5lp-hightpu-4t", 4),
        ("v5e", "16x16", "ct5lp-hightpu-4t", 64),
        ("v4", "2x2x1", "ct4p-hightpu-4t", 1),
        ("v4", "2x2x4", "ct4p-hightpu-4t", 4),
        ("v5p", "2x4x4", "ct5p-hightpu-4t", 8),
        ("v6e", "2x2", "ct6e-standard-4t", 1),
        ("v6e", "8x8", "ct6e-standard-4t", 16),
    ],
)
def test_tpu_slices(version, topology, machine, nodes):
    s = acc.tpu_slice(version, topology)
    assert (s.machine_type, s.nodes) == (machine, nodes)
    assert s.nodes * s.chips_per_vm == acc.topology_chips(topology)


def test_every_listed_topology_fills_whole_vms():
    for version, entry in acc.tpu_versions().items():
        for topology in entry["topologies"]:
            s = acc.tpu_slice(version, topology)
            assert s.nodes * s.chips_per_vm == acc.topology_chips(topology), (version, topology)
