"""`mlkit apply --only apis` with objects a team added under infra/k8s, run as a user runs it (the
real CLI in a subprocess, the Kubernetes API emulator as the cluster, moto as AWS): they are applied
with mlkit's, and a file that is not an object, or a kind the cluster does not serve, is one error
line naming the file, exit 1, with nothing applied."""

from __future__ import annotations

import pytest

from tests.cluster.test_manifests import HPA as MANIFEST_HPA
from tests.commands import test_operate
from tests.commands.test_operate import NS, Controller, push_images
from tests.conftest import assert_one_line_error, mlkit

proj = test_operate.proj  # the fixture, shared: pytest finds it by this module-level name

HPA = MANIFEST_HPA.replace("sentiment", "spam")


def test_team_objects_are_applied_with_mlkits(proj, k8s, moto):
    root, env = proj
    push_images(root, moto)
    k8s.serve("monitoring.coreos.com/v1/servicemonitors", "ServiceMonitor")  # the Prometheus operator's CRD
    team = root / "infra/k8s/team"
    team.mkdir()
    (team / "hpa.yaml").write_text(HPA)
    (team / "monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: spam}\n"
        "spec: {selector: {matchLabels: {mlkit.dev/api: spam}}, endpoints: [{port: http, path: /metrics}]}\n"
    )
    controller = Controller(k8s.url)
    try:
        result = mlkit("apply", "--only", "apis", "--timeout", "30", cwd=root, env=env)
    finally:
        controller.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert [h["metadata"]["name"] for h in k8s.objects("horizontalpodautoscalers")] == ["spam-cpu"]
    monitors = k8s.objects("servicemonitors")
    assert [(m["metadata"]["name"], m["metadata"]["namespace"]) for m in monitors] == [("spam", NS)]

    (team / "monitor.yaml").unlink()
    again = mlkit("apply", "--only", "apis", "--timeout", "5", cwd=root, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pruned ServiceMonitor spam: no longer under infra/k8s" in again.stderr
    assert k8s.objects("servicemonitors") == [] and len(k8s.objects("horizontalpodautoscalers")) == 1


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: spam}\n",
     "infra/k8s/team/extra.yaml: ServiceMonitor (monitoring.coreos.com/v1) is not served by the cluster: "
     "the cluster does not serve the API group monitoring.coreos.com"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n", "infra/k8s/team/extra.yaml: not valid YAML (line 4, column 1"),
    ("- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n", "infra/k8s/team/extra.yaml: a list, not a Kubernetes object"),
    ("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n", "infra/k8s/team/extra.yaml: ConfigMap has no metadata mapping; set metadata.name"),
], ids=["unserved-kind", "invalid-yaml", "a-list", "no-name"])
def test_a_bad_team_file_is_one_line_and_nothing_is_applied(proj, k8s, moto, text, message):
    root, env = proj
    push_images(root, moto)
    (root / "infra/k8s/team").mkdir()
    (root / "infra/k8s/team/extra.yaml").write_text(text)
    result = mlkit("apply", "--only", "apis", "--timeout", "5", cwd=root, env=env)
    assert_one_line_error(result, message)
    assert [line for line in result.stderr.splitlines() if "infra/k8s/team/extra.yaml" in line] == [result.stderr.strip().splitlines()[-1]]
    assert k8s.objects("deployments") == [] and k8s.objects("namespaces") == [] and k8s.objects("configmaps") == []
