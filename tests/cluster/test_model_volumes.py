"""model_access: mount on EKS against the Kubernetes API emulator: the PersistentVolume goes in
cluster-wide before its claim and the pods, and a new model replaces both, pruning the old pair."""

from __future__ import annotations

from mlkit.cluster import rollout
from tests.cluster.test_rollout import SPEC, lines, project

MOUNT = SPEC.replace("model: s3://models-m/spam/}", "model: s3://models-m/spam/v1/, model_access: mount}")


def test_the_volume_and_claim_go_in_before_the_pods_and_a_new_model_replaces_them(tmp_path, cluster, k8s):
    spec = project(tmp_path, MOUNT)
    _, say = lines()
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    (pv,) = k8s.objects("persistentvolumes")
    (pvc,) = k8s.objects("persistentvolumeclaims")
    assert "namespace" not in pv["metadata"] and pvc["metadata"]["namespace"] == "ops-demo"
    assert pv["spec"]["claimRef"]["name"] == pvc["metadata"]["name"] and "prefix spam/v1/" in pv["spec"]["mountOptions"]
    patches = [r.split("?")[0] for r in k8s.requests() if r.startswith("PATCH ")]
    first = {kind: next(i for i, r in enumerate(patches) if f"/{kind}/" in r) for kind in ("persistentvolumes", "persistentvolumeclaims")}
    spam = next(i for i, r in enumerate(patches) if r.endswith("/deployments/spam"))
    assert first["persistentvolumes"] < first["persistentvolumeclaims"] < spam, patches
    assert patches[first["persistentvolumes"]].startswith("PATCH /api/v1/persistentvolumes/")  # cluster-scoped

    moved = project(tmp_path, MOUNT.replace("spam/v1/", "spam/v2/"))
    log, say = lines()
    rollout.apply(cluster, moved, rollout.load_manifests(tmp_path, moved), say)
    (new_pv,) = k8s.objects("persistentvolumes")
    (new_pvc,) = k8s.objects("persistentvolumeclaims")
    assert new_pv["metadata"]["name"] != pv["metadata"]["name"] and "prefix spam/v2/" in new_pv["spec"]["mountOptions"]
    assert f"pruned PersistentVolume {pv['metadata']['name']}: no longer under infra/k8s" in log
    assert f"pruned PersistentVolumeClaim {pvc['metadata']['name']}: no longer under infra/k8s" in log
    deployment = next(d for d in k8s.objects("deployments") if d["metadata"]["name"] == "spam")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [new_pvc["metadata"]["name"]]


def test_the_same_project_in_another_namespace_keeps_its_volumes(tmp_path, cluster, k8s):
    """PersistentVolumes are cluster-wide: a staging deployment of the project (`namespace:`) beside the
    default one must not lose its volumes (or its namespace) when the other is applied or deleted."""
    staging = project(tmp_path / "staging", MOUNT.replace("project: ops-demo", "project: ops-demo\nnamespace: ops-staging"))
    rollout.apply(cluster, staging, rollout.load_manifests(tmp_path / "staging", staging), lines()[1])
    ours = {p["metadata"]["name"] for p in k8s.objects("persistentvolumes")}
    assert ours and all(name.startswith("ops-staging-") for name in ours)
    prod = project(tmp_path / "prod", MOUNT)
    log, say = lines()
    rollout.apply(cluster, prod, rollout.load_manifests(tmp_path / "prod", prod), say)
    assert not [line for line in log if "pruned" in line], log
    assert ours < {p["metadata"]["name"] for p in k8s.objects("persistentvolumes")}
    rollout.remove(cluster, prod, lines()[1])
    assert {p["metadata"]["name"] for p in k8s.objects("persistentvolumes")} == ours
    assert "ops-staging" in {n["metadata"]["name"] for n in k8s.objects("namespaces")}
