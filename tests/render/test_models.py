"""How replicas get their model (cli/render/models.py): copied by a tuned init container, or mounted
through the cloud's CSI bucket driver; every manifest also checked against the Kubernetes schemas."""

from __future__ import annotations

import configparser
import json

import kubernetes_validate
import pytest
import yaml

from mlkit.cluster.kinds import ORDER
from mlkit.render import models
from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLES

AWS = """
project: mnt-demo
cloud: aws
region: us-east-1
cluster:
  node_pools: [{name: cpu, instance_type: m6i.large}, {name: gpu, instance_type: g5.12xlarge, max_nodes: 2}]
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    model: s3://models/sentiment/v3/
    model_access: mount
    expose: public
    canary: {weight: 10, model: s3://models/sentiment/v4/}
  - {name: chat, engine: vllm, model: s3://acme-models/llama, model_access: mount, compute: {cpu: 8, memory: 96Gi, gpu: 4}}
  - {name: copy, predictor: predictor.py:Predictor, model: s3://models/copy/}
"""

GCP = """
project: mnt-gcp
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster: {node_pools: [{name: cpu, instance_type: n2-standard-4}, {name: l4, instance_type: g2-standard-24, max_nodes: 2}]}
apis:
  - {name: a, predictor: p.py:P, model: gs://acme-models/a/v1/, model_access: mount}
  - {name: chat, engine: vllm, model: gs://acme-models, model_access: mount, compute: {memory: 48Gi, gpu: 2}}
  - {name: b, predictor: p.py:P, model: gs://acme-models/b/v1/}
"""

FILES = {"aws": render(loads(AWS)), "gcp": render(loads(GCP))}


def docs(cloud: str, api: str, name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(FILES[cloud][f"infra/k8s/{api}/{name}.yaml"]) if d]


def pod(cloud: str, api: str, track: int = 0) -> dict:
    return docs(cloud, api, "deployment")[track]["spec"]["template"]


def volume(template: dict, name: str = "model") -> dict:
    return next(v for v in template["spec"]["volumes"] if v["name"] == name)


@pytest.mark.parametrize("version", ["1.31.0", "1.34.0"])
@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_manifest_passes_strict_schema_validation(cloud, version):
    for rel, text in FILES[cloud].items():
        if rel.startswith("infra/k8s/"):
            for doc in yaml.safe_load_all(text):
                if doc and doc["apiVersion"] in ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"):
                    kubernetes_validate.validate(doc, version, strict=True)


def test_eks_mount_is_a_static_mountpoint_volume_bound_to_its_claim_read_only_for_the_runtimes_user():
    pv, pvc = docs("aws", "sentiment", "model-volume")[:2]
    assert (pv["kind"], pvc["kind"]) == ("PersistentVolume", "PersistentVolumeClaim")
    csi = pv["spec"]["csi"]
    assert csi["driver"] == "s3.csi.aws.com" and csi["readOnly"] is True and csi["volumeHandle"] == pv["metadata"]["name"]
    # The pod's own IRSA role reads (the API's role, read-only on the model bucket), not a driver-wide one.
    assert csi["volumeAttributes"] == {"bucketName": "models", "authenticationSource": "pod"}
    assert pv["spec"]["mountOptions"] == ["read-only", "region us-east-1", "prefix sentiment/v3/", "uid=10001", "gid=10001", "allow-other"]
    assert pv["spec"]["storageClassName"] == pvc["spec"]["storageClassName"] == ""
    assert pv["spec"]["accessModes"] == pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # deleting the PV never touches the bucket
    assert pv["spec"]["claimRef"] == {"namespace": "mnt-demo", "name": pvc["metadata"]["name"]}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"] and pvc["metadata"]["namespace"] == "mnt-demo"
    assert "namespace" not in pv["metadata"] and pv["metadata"]["name"].startswith("mnt-demo-sentiment-model-")
    assert pv["metadata"]["labels"]["app.kubernetes.io/part-of"] == "mnt-demo"  # pruned with the project's objects
    template = pod("aws", "sentiment")
    assert "initContainers" not in template["spec"]  # nothing is copied
    assert volume(template) == {"name": "model", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"], "readOnly": True}}
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in template["spec"]["containers"][0]["volumeMounts"]
    assert template["spec"]["securityContext"]["runAsUser"] == 10001


def test_each_track_mounts_its_own_prefix_and_a_new_model_is_a_new_volume():
    stable, canary = docs("aws", "sentiment", "model-volume")[0], docs("aws", "sentiment", "model-volume")[2]
    assert "prefix sentiment/v4/" in canary["spec"]["mountOptions"] and stable["metadata"]["name"] != canary["metadata"]["name"]
    assert volume(pod("aws", "sentiment", 1))["persistentVolumeClaim"]["claimName"] == canary["spec"]["claimRef"]["name"]
    # A PV's source cannot change: another prefix (a new upload) renders another PV and PVC, which the Deployment follows.
    again = list(yaml.safe_load_all(render(loads(AWS.replace("sentiment/v3/", "sentiment/v5/")))["infra/k8s/sentiment/model-volume.yaml"]))
    assert again[0]["metadata"]["name"] != stable["metadata"]["name"] and "prefix sentiment/v5/" in again[0]["spec"]["mountOptions"]


def test_a_local_model_mounts_the_prefix_it_was_uploaded_to():
    spec = load(EXAMPLES / "aws-accelerators" / "mlkit.yaml")
    before = next(yaml.safe_load_all(render(spec)["infra/k8s/sentiment-gpu/model-volume.yaml"]))
    assert before["spec"]["csi"]["volumeAttributes"]["bucketName"] == "UPLOADED-ON-APPLY"  # a placeholder that mounts nothing
    after = next(yaml.safe_load_all(render(spec, Facts(models={"sentiment-gpu": "s3://b/sentiment-gpu/abc/"}))["infra/k8s/sentiment-gpu/model-volume.yaml"]))
    assert after["spec"]["csi"]["volumeAttributes"]["bucketName"] == "b" and "prefix sentiment-gpu/abc/" in after["spec"]["mountOptions"]
    assert after["metadata"]["name"] != before["metadata"]["name"]


def test_a_whole_bucket_mounts_without_a_prefix_and_an_engine_reads_its_weights_from_the_mount():
    pv = docs("aws", "chat", "model-volume")[0]
    assert "prefix llama/" in pv["spec"]["mountOptions"]
    template = pod("aws", "chat")
    assert "initContainers" not in template["spec"] and "persistentVolumeClaim" in volume(template)
    args = template["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/models"
    gke = pod("gcp", "chat")
    assert "only-dir" not in volume(gke)["csi"]["volumeAttributes"]["mountOptions"]  # gs://acme-models: the whole bucket


def test_gke_mount_is_an_inline_cloud_storage_fuse_volume_with_the_sidecar_annotation():
    template = pod("gcp", "a")
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    assert "initContainers" not in template["spec"]
    assert volume(template) == {
        "name": "model",
        "csi": {
            "driver": "gcsfuse.csi.storage.gke.io",
            "readOnly": True,
            "volumeAttributes": {"bucketName": "acme-models", "mountOptions": "implicit-dirs,only-dir=a/v1,uid=10001,gid=10001"},
        },
    }
    assert not any(rel.endswith("model-volume.yaml") for rel in FILES["gcp"])  # no PV on GKE
    # The pod reads as its Workload Identity: the serving account that may read the model bucket.
    sa = docs("gcp", "a", "serviceaccount")[0]
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == "mnt-gcp-serving@acme-ml.iam.gserviceaccount.com"
    assert "gke-gcsfuse/volumes" not in pod("gcp", "b")["metadata"]["annotations"]


def test_s3_copy_runs_aws_cli_with_its_tuned_config_and_removes_what_a_killed_run_left():
    template = pod("aws", "copy")
    init = template["spec"]["initContainers"][0]
    assert init["command"] == ["aws", "s3", "sync", "--only-show-errors", "--delete", "s3://models/copy/", "/models"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["AWS_CONFIG_FILE"] == "/etc/mlkit/model-fetch/config"
    assert {"name": "model-fetch", "mountPath": "/etc/mlkit/model-fetch", "readOnly": True} in init["volumeMounts"]
    assert volume(template, "model-fetch") == {"name": "model-fetch", "configMap": {"name": "copy-model-fetch"}}
    assert volume(template) == {"name": "model", "emptyDir": {}}
    (config_map,) = docs("aws", "copy", "model-fetch")
    config = configparser.ConfigParser()
    config.read_string(config_map["data"]["config"])
    s3 = dict(line.split(" = ") for line in config["default"]["s3"].strip().splitlines())
    assert s3 == models.AWS_CLI_S3 and int(s3["max_concurrent_requests"]) > 10  # aws-cli's default is 10
    # The predictor never sees the fetcher's settings.
    assert all(m["name"] != "model-fetch" for m in template["spec"]["containers"][0]["volumeMounts"])


def test_gcs_copy_fixes_gclouds_parallelism_and_keeps_its_tracker_files_in_the_tmp_volume():
    init = pod("gcp", "b")["spec"]["initContainers"][0]
    assert init["command"] == ["gcloud", "storage", "rsync", "--recursive", "gs://acme-models/b/v1/", "/models"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["CLOUDSDK_CONFIG"] == "/tmp/gcloud" and {"name": "tmp", "mountPath": "/tmp"} in init["volumeMounts"]
    assert {k: v for k, v in env.items() if k.startswith("CLOUDSDK_STORAGE_")} == models.GCLOUD_STORAGE
    assert int(env["CLOUDSDK_STORAGE_PROCESS_COUNT"]) * int(env["CLOUDSDK_STORAGE_THREAD_COUNT"]) >= 16
    assert not any(rel.endswith("model-fetch.yaml") for rel in FILES["gcp"])  # gcloud takes its settings from the environment


def test_mount_objects_are_applied_before_the_pods_that_use_them():
    assert ORDER[("v1", "PersistentVolume")] < ORDER[("v1", "PersistentVolumeClaim")] < ORDER[("apps/v1", "Deployment")]


@pytest.mark.parametrize(("example", "cloud", "variable"), [
    ("aws-accelerators", "aws", "enable_mountpoint_s3_csi_driver"),
    ("gcp-l4", "gcp", "enable_gcs_fuse_csi_driver"),
])
def test_the_cluster_stack_installs_the_driver_only_when_an_api_mounts(example, cloud, variable):
    spec = load(EXAMPLES / example / "mlkit.yaml")
    tfvars = lambda files: json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])  # noqa: E731
    assert tfvars(render(spec))[variable] is True
    for api in spec.apis:
        api.model_access = "copy"
    assert tfvars(render(spec))[variable] is False


def test_a_pinned_model_that_would_inject_mount_options_is_refused_in_one_line(project, sentinel):
    """A rollback pin comes from .mlkit/deploy.json (a pull request): its model must meet the same rule as
    mlkit.yaml's before it becomes a mount option (a comma would add options such as uid=0 or o=rw)."""
    from tests.conftest import assert_one_line_error, mlkit

    proj = project("gcp-l4")
    hostile = "gs://bkt-models/x,uid=0,gid=0,file-mode=777,o=rw/"
    revision = {"time": "2026-11-29T23:10:00Z", "image": "abc", "config_hash": "0123456789abcdef", "spec_hash": "0123456789abcdef", "git_commit": None}
    record = {
        "aws_account_id": None, "images": {}, "models": {},
        "revisions": {"sentiment-l4": [
            {"number": 1, "model": hostile, **revision},
            {"number": 2, "model": "gs://bkt-models/y/", **revision, "image": "abd"},
            {"number": 3, "model": hostile, **revision, "rolled_back_from": 2, "rolled_back_to": 1},
        ]},
        "pins": {"sentiment-l4": 3},
    }
    (proj / ".mlkit").mkdir(exist_ok=True)
    (proj / ".mlkit/deploy.json").write_text(json.dumps(record))
    result = mlkit("render", cwd=proj)
    assert_one_line_error(result, "sentiment-l4", "cannot be mounted", "deploy.json")
    assert not (proj / "infra").exists()
    sentinel.assert_untouched()
