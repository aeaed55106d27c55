"""Reading infra/k8s: what a team adds is taken as it is, and what is not a Kubernetes object is one
line naming the file (and the document), before anything reaches a cluster."""

from __future__ import annotations

import pytest

from mlkit.cluster.manifests import load_manifests
from mlkit.errors import UserError
from tests.cluster.test_rollout import project
from tests.conftest import tree_snapshot

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: sentiment-cpu}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: sentiment}
  minReplicas: 1
  maxReplicas: 4
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
"""


def add(tmp_path, rel: str, text: str | bytes):
    path = tmp_path / "infra/k8s" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_team_objects_follow_mlkits_kinds_in_file_order_and_carry_its_labels(tmp_path):
    spec = project(tmp_path)
    add(tmp_path, "team/b-hpa.yaml", HPA)
    add(tmp_path, "team/a-notes.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: team-notes, labels: {team: ml}}\ndata: {owner: ml}\n")
    add(tmp_path, "team/c-flags.json", '{"apiVersion": "acme.dev/v1", "kind": "FeatureFlag", "metadata": {"name": "beta"}}')
    manifests = load_manifests(tmp_path, spec)
    kinds = [m.kind for m in manifests]
    assert kinds[0] == "Namespace" and kinds[-2:] == ["HorizontalPodAutoscaler", "FeatureFlag"]
    # A ConfigMap is one of mlkit's kinds: it goes with the ConfigMaps, before the Deployments.
    assert kinds.index("ConfigMap") < kinds.index("Deployment")
    notes = next(m for m in manifests if m.name == "team-notes")
    assert notes.file == "infra/k8s/team/a-notes.yml"
    assert notes.obj["metadata"]["labels"] == {"team": "ml", "app.kubernetes.io/part-of": "ops-demo", "app.kubernetes.io/managed-by": "mlkit"}
    assert [m.file for m in manifests[-2:]] == ["infra/k8s/team/b-hpa.yaml", "infra/k8s/team/c-flags.json"]


def test_a_v1_list_is_applied_item_by_item_as_kubectl_does(tmp_path):
    spec = project(tmp_path)
    add(tmp_path, "team/list.yaml", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}\n"
                                    "- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}\n")
    names = [m.name for m in load_manifests(tmp_path, spec) if m.file == "infra/k8s/team/list.yaml"]
    assert names == ["one", "two"]


BAD = [
    ("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n", "infra/k8s/team/bad.yaml: not valid YAML (line 4, column 1:"),
    ("list.yaml", "- apiVersion: v1\n  kind: ConfigMap\n", "infra/k8s/team/list.yaml: a list, not a Kubernetes object"),
    ("text.yaml", "just some words\n", "infra/k8s/team/text.yaml: a string, not a Kubernetes object"),
    ("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "infra/k8s/team/nokind.yaml: has no kind; set it"),
    ("noversion.yaml", "kind: ConfigMap\nmetadata: {name: x}\n", "infra/k8s/team/noversion.yaml: has no apiVersion; set it"),
    ("badversion.yaml", "apiVersion: ../../v1\nkind: ConfigMap\nmetadata: {name: x}\n", "has apiVersion '../../v1', which is not GROUP/VERSION"),
    ("nometa.yaml", "apiVersion: v1\nkind: ConfigMap\n", "infra/k8s/team/nometa.yaml: ConfigMap has no metadata mapping"),
    ("noname.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "ConfigMap has no metadata.name; set one"),
    (
        "path.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../secrets/x}\n",
        "has metadata.name '../../secrets/x', which is not a Kubernetes name",
    ),
    ("ns.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: 'a/b'}\n", "has metadata.namespace 'a/b', which is not a namespace name"),
    ("labels.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {version: 2}}\n", "has metadata.labels that are not a mapping of strings"),
    ("emptylist.yaml", "apiVersion: v1\nkind: List\n", "infra/k8s/team/emptylist.yaml: a List without an items list"),
    ("two.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\nkind: Secret\n", "infra/k8s/team/two.yaml, document 2: has no apiVersion"),
    ("latin1.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1"), "infra/k8s/team/latin1.yaml: not UTF-8 text"),
    # infra/ may come from a pull request: yaml.safe_load_all expanded a billion laughs, and int() raised past 4300 digits.
    (
        "laughs.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"  {c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
        "aliases expand the document past",
    ),
    ("digits.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {replicas: " + "9" * 5000 + "}\n", "a number of 5000 digits"),
    ("laughs2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + "kind: Secret\n", "laughs2.yaml, document 2: has no apiVersion"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_what_is_not_a_kubernetes_object_is_one_line_naming_the_file(tmp_path, name, text, message):
    spec = project(tmp_path)
    add(tmp_path, f"team/{name}", text)
    with pytest.raises(UserError) as caught:
        load_manifests(tmp_path, spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_manifest_that_is_not_a_regular_file_is_one_line_not_a_hang(tmp_path):
    import os

    spec = project(tmp_path)
    (tmp_path / "infra/k8s/team").mkdir(parents=True, exist_ok=True)
    os.mkfifo(tmp_path / "infra/k8s/team/fifo.yaml")  # a read would wait for a writer for ever
    with pytest.raises(UserError, match="^infra/k8s/team/fifo.yaml: not a regular file"):
        load_manifests(tmp_path, spec)


def test_the_same_object_in_two_files_names_both(tmp_path):
    spec = project(tmp_path)
    add(tmp_path, "team/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n")
    add(tmp_path, "team/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n")
    with pytest.raises(UserError, match=r"^infra/k8s/team/b.yaml: ConfigMap dup is also in infra/k8s/team/a.yaml; keep one of them$"):
        load_manifests(tmp_path, spec)


def test_a_symlink_out_of_the_project_is_refused_and_not_read(tmp_path, sentinel):
    root = tmp_path / "proj"
    root.mkdir()
    spec = project(root)
    (sentinel.root / "secrets/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\n")
    sentinel.before = tree_snapshot(sentinel.root)
    (root / "infra/k8s/team").mkdir()
    (root / "infra/k8s/team/cm.yaml").symlink_to(sentinel.root / "secrets/cm.yaml")
    with pytest.raises(UserError, match=r"^infra/k8s/team/cm.yaml: a symlink leading outside the project"):
        load_manifests(root, spec)
    sentinel.assert_untouched()
