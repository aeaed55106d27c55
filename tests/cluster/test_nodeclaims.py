"""`mlkit destroy` waits for Karpenter's NodeClaims of the project's NodePools to go before the add-ons stack
uninstalls Karpenter, on the API emulator through mlkit's cluster client. The test plays Karpenter: it deletes
the NodeClaims a little later, or never."""

from __future__ import annotations

import threading
import time

import pytest

from mlkit.cluster import nodeclaims
from mlkit.commands import destroy
from mlkit.errors import ToolError
from mlkit.spec.loader import loads

SPEC = """\
project: acme
cloud: aws
region: eu-west-1
cluster:
  node_provisioning: {mode}
  node_pools:
    - {{name: cpu, instance_type: m6i.large}}
    - {{name: gpu, instance_type: g5.xlarge}}
apis:
  - {{name: a, predictor: p.py:P}}
"""


def claim(name: str, nodepool: str) -> dict:
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": name, "labels": {nodeclaims.NODEPOOL_LABEL: nodepool}}, "spec": {"nodeClassRef": {"name": nodepool}}}


@pytest.fixture
def claims(k8s, cluster):
    k8s.serve("karpenter.sh/v1/nodeclaims", "NodeClaim", namespaced=False)
    for name, pool in (("cpu-abc12", "cpu"), ("gpu-def34", "gpu"), ("cpu-auto-x1", "cpu-auto"), ("other-zz9", "team-pool")):
        cluster.apply(claim(name, pool), nodeclaims.NODECLAIMS)
    return cluster


def karpenter_later(cluster, names: list[str], after_s: float) -> threading.Thread:
    def run() -> None:
        time.sleep(after_s)
        for name in names:
            cluster.delete(nodeclaims.NODECLAIMS, None, name)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_it_waits_until_the_nodeclaims_of_its_nodepools_are_gone(claims, k8s):
    said: list[str] = []
    assert nodeclaims.remaining(claims, {"cpu", "gpu"}) == ["cpu-abc12", "gpu-def34"]
    thread = karpenter_later(claims, ["cpu-abc12", "gpu-def34"], 0.6)
    start = time.monotonic()
    nodeclaims.wait_gone(claims, {"cpu", "gpu"}, said.append, timeout_s=20, poll_s=0.1)
    thread.join()
    assert time.monotonic() - start >= 0.5  # it did wait
    assert said == ["waiting for Karpenter to terminate 2 node(s): cpu-abc12, gpu-def34"]
    # Another NodePool's NodeClaims (a team's, or Auto Mode's) are not the project's business here.
    assert sorted(c["metadata"]["name"] for c in k8s.objects("nodeclaims")) == ["cpu-auto-x1", "other-zz9"]


def test_nodeclaims_that_outlast_the_wait_stop_destroy_with_exit_3(claims):
    with pytest.raises(ToolError) as info:
        nodeclaims.wait_gone(claims, {"cpu", "gpu"}, lambda _: None, timeout_s=0.3, poll_s=0.1)
    assert info.value.exit_code == 3
    message = str(info.value)
    assert message.startswith("2 NodeClaims of the deleted NodePools are still on the cluster after 0 s (cpu-abc12, gpu-def34)")
    assert "The add-ons and cluster stacks were left in place" in message and "\n" not in message


def test_a_cluster_without_karpenter_has_nothing_to_wait_for(cluster):
    assert nodeclaims.remaining(cluster, {"cpu"}) == []  # NodeClaims are not served: no CRD, no nodes of Karpenter
    nodeclaims.wait_gone(cluster, {"cpu"}, pytest.fail, timeout_s=0)


@pytest.mark.parametrize(("mode", "names"), [("karpenter", ["cpu-abc12", "gpu-def34"]), ("auto-mode", ["cpu-auto-x1"])])
def test_destroy_waits_for_the_nodepools_of_its_mode(claims, monkeypatch, mode, names):
    said: list[str] = []
    monkeypatch.setattr(destroy, "say", said.append)
    thread = karpenter_later(claims, names, 0.4)
    destroy._wait_for_nodes(claims, loads(SPEC.format(mode=mode)))
    thread.join()
    assert said and said[0].startswith(f"waiting for Karpenter to terminate {len(names)} node(s): {names[0]}")


def test_node_groups_do_not_wait(claims, monkeypatch):
    monkeypatch.setattr(nodeclaims, "wait_gone", pytest.fail)
    destroy._wait_for_nodes(claims, loads(SPEC.format(mode="node-groups")))
