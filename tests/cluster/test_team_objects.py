"""`mlkit apply` takes what a team adds under infra/k8s (an HPA, its own ConfigMap, a custom resource
of a CRD the cluster has), found through the emulator's API discovery; a kind the cluster does not
serve stops the run before anything is applied; pruning reaches only objects with mlkit's labels."""

from __future__ import annotations

import shutil

import pytest

from mlkit.cluster import rollout
from mlkit.errors import UserError
from tests.cluster.test_manifests import HPA, add
from tests.cluster.test_rollout import lines, project

NS = "ops-demo"
WIDGET = "apiVersion: acme.dev/v1\nkind: Widget\nmetadata: {name: blue}\nspec: {size: 3}\n"
PRIORITY = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: ml-high, namespace: ignored}\nvalue: 1000\n"
NOTES = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: team-notes}\ndata: {owner: ml}\n"


def team_project(tmp_path, k8s):
    spec = project(tmp_path)
    k8s.serve("acme.dev/v1/widgets", "Widget")  # the team's CRD, installed on the cluster
    add(tmp_path, "team/1-hpa.yaml", HPA)
    add(tmp_path, "team/2-widget.yaml", WIDGET)
    add(tmp_path, "team/3-priority.yaml", PRIORITY)
    add(tmp_path, "team/4-notes.yaml", NOTES)
    return spec


def patches(k8s) -> list[str]:
    return [r.split(" ", 1)[1] for r in k8s.requests() if r.startswith("PATCH ")]


def test_team_objects_are_applied_after_mlkits_with_one_discovery_per_run(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    _, say = lines()
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)

    hpa = k8s.objects("horizontalpodautoscalers")
    assert [(h["metadata"]["name"], h["metadata"]["namespace"]) for h in hpa] == [("sentiment-cpu", NS)]  # no namespace: the project's
    assert hpa[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlkit"
    assert [w["spec"] for w in k8s.objects("widgets")] == [{"size": 3}]
    assert "team-notes" in {c["metadata"]["name"] for c in k8s.objects("configmaps")}
    paths = patches(k8s)
    # Cluster-scoped, as discovery says: its path has no namespace, whatever the file wrote.
    assert "/apis/scheduling.k8s.io/v1/priorityclasses/ml-high" in paths
    team = [p for p in paths if "horizontalpodautoscalers" in p or "widgets" in p or "priorityclasses" in p]
    assert paths[-3:] == team, "kinds mlkit does not know follow its own"
    assert team == [
        f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/sentiment-cpu",
        f"/apis/acme.dev/v1/namespaces/{NS}/widgets/blue",
        "/apis/scheduling.k8s.io/v1/priorityclasses/ml-high",
    ], "in file order"
    assert paths.index(f"/api/v1/namespaces/{NS}/configmaps/team-notes") < paths.index(f"/apis/apps/v1/namespaces/{NS}/deployments/sentiment")

    discovery = [r for r in k8s.requests() if r.startswith("GET ") and r.split(" ")[1].count("/") <= 3 and "/namespaces" not in r]
    assert sorted(discovery) == sorted(set(discovery)), f"each discovery document once per run: {discovery}"
    assert {"GET /api", "GET /apis", "GET /api/v1", "GET /apis/autoscaling/v2", "GET /apis/acme.dev/v1", "GET /apis/scheduling.k8s.io/v1"} <= set(discovery)
    assert not any(r.startswith("GET /apis/batch") for r in discovery), "only the group-versions the manifests use"
    namespace = next(n for n in k8s.objects("namespaces") if n["metadata"]["name"] == NS)
    assert (
        namespace["metadata"]["annotations"]["mlkit.dev/applied-kinds"] == "HorizontalPodAutoscaler.autoscaling,PriorityClass.scheduling.k8s.io,Widget.acme.dev"
    )


def test_a_kind_the_cluster_does_not_serve_names_the_file_and_nothing_is_applied(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    add(tmp_path, "team/5-flag.yaml", "apiVersion: flags.acme.dev/v1\nkind: FeatureFlag\nmetadata: {name: beta}\n")
    with pytest.raises(UserError) as caught:
        rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    assert str(caught.value) == (
        "infra/k8s/team/5-flag.yaml: FeatureFlag (flags.acme.dev/v1) is not served by the cluster: "
        "the cluster does not serve the API group flags.acme.dev (install the CRD or the add-on that brings FeatureFlag first)"
    )
    assert patches(k8s) == [] and k8s.objects("namespaces") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HPA.replace("autoscaling/v2", "autoscaling/v2beta2", 1), "the cluster serves HorizontalPodAutoscaler as "),
        (WIDGET.replace("acme.dev/v1", "acme.dev/v2").replace("blue", "red"), "the cluster serves Widget as acme.dev/v1, not acme.dev/v2; change apiVersion"),
        (WIDGET.replace("acme.dev/v1", "acme.dev/v2").replace("Widget", "Gadget"), "the cluster does not serve acme.dev/v2 (acme.dev serves v1)"),
        (WIDGET.replace("Widget", "Gadget").replace("blue", "red"), "the cluster serves acme.dev/v1 but no kind Gadget in it"),
    ],
)
def test_a_version_or_kind_the_cluster_lacks_says_what_it_has(tmp_path, cluster, k8s, text, message):
    spec = team_project(tmp_path, k8s)
    add(tmp_path, "team/5-extra.yaml", text.replace("sentiment-cpu", "spam-cpu"))
    with pytest.raises(UserError, match="^infra/k8s/team/5-extra.yaml: ") as caught:
        rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    assert message in str(caught.value)
    assert patches(k8s) == []


def test_an_object_for_a_namespace_the_cluster_lacks_is_refused_before_applying(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    add(tmp_path, "team/4-notes.yaml", NOTES.replace("{name: team-notes}", "{name: team-notes, namespace: monitoring}"))
    with pytest.raises(UserError, match=r"^infra/k8s/team/4-notes.yaml: ConfigMap team-notes goes to namespace monitoring, which the cluster does not have"):
        rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    assert patches(k8s) == []
    # With a Namespace for it among the manifests, it goes there; a Deployment there is the team's to watch.
    add(tmp_path, "team/0-monitoring.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n")
    add(tmp_path, "team/5-exporter.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: exporter, namespace: monitoring}\nspec: {replicas: 1}\n")
    applied = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    assert ("team-notes", "monitoring") in {(c["metadata"]["name"], c["metadata"]["namespace"]) for c in k8s.objects("configmaps")}
    assert ("exporter", "monitoring") in {(d["metadata"]["name"], d["metadata"]["namespace"]) for d in k8s.objects("deployments")}
    assert sorted(d["metadata"]["name"] for d in applied.changed_deployments) == ["sentiment", "spam"]


def test_team_objects_whose_files_are_deleted_are_pruned_and_unlabelled_ones_never(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    add(tmp_path, "team/4-notes.yaml", NOTES.replace("{name: team-notes}", "{name: team-notes, namespace: monitoring}"))
    add(tmp_path, "team/0-monitoring.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n")
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    # Objects someone made by hand, without mlkit's labels: never mlkit's to delete.
    cluster.apply(
        {"apiVersion": "acme.dev/v1", "kind": "Widget", "metadata": {"name": "hand-made", "namespace": NS}}, cluster.discovery.find("acme.dev/v1", "Widget")
    )
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made", "namespace": "monitoring"}})

    shutil.rmtree(tmp_path / "infra/k8s/team")
    add(tmp_path, "team/0-monitoring.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n")
    log, say = lines()
    applied = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert set(applied.pruned) == {
        ("HorizontalPodAutoscaler", NS, "sentiment-cpu"),
        ("Widget", NS, "blue"),
        ("PriorityClass", None, "ml-high"),
        ("ConfigMap", "monitoring", "team-notes"),
    }
    assert "pruned Widget blue: no longer under infra/k8s" in log
    assert [w["metadata"]["name"] for w in k8s.objects("widgets")] == ["hand-made"]
    assert k8s.objects("horizontalpodautoscalers") == [] and k8s.objects("priorityclasses") == []
    assert {c["metadata"]["name"] for c in k8s.objects("configmaps") if c["metadata"]["namespace"] == "monitoring"} == {"hand-made"}
    assert "monitoring" in {n["metadata"]["name"] for n in k8s.objects("namespaces")}, "namespaces are never pruned"
    namespace = next(n for n in k8s.objects("namespaces") if n["metadata"]["name"] == NS)
    assert "mlkit.dev/applied-kinds" not in namespace["metadata"].get("annotations", {}), "the record shrinks to what is applied"

    again = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert again.pruned == []


def test_delete_removes_the_team_objects_too(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    removed = rollout.remove(cluster, spec, lambda _: None)
    assert {("HorizontalPodAutoscaler", "sentiment-cpu"), ("Widget", "blue"), ("PriorityClass", "ml-high"), ("ConfigMap", "team-notes")} <= set(removed)
    assert k8s.objects("widgets") == [] and k8s.objects("priorityclasses") == [] and k8s.objects("namespaces") == []


def test_a_rejected_object_names_its_file(tmp_path, cluster, k8s):
    spec = team_project(tmp_path, k8s)
    # The API server's validation, as a CRD's schema would answer.
    (
        k8s.emulator[f"patch /apis/acme.dev/v1/namespaces/{NS}/widgets/blue"]
        << 422
        << {
            "kind": "Status",
            "code": 422,
            "message": 'Widget.acme.dev "blue" is invalid: spec.size: Invalid value: 3: must be even',
        }
    )
    from mlkit.errors import ToolError

    with pytest.raises(ToolError) as caught:
        rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), lambda _: None)
    assert str(caught.value).startswith("infra/k8s/team/2-widget.yaml: PATCH ")
    assert "(422): Widget.acme.dev \"blue\" is invalid: spec.size" in str(caught.value)
