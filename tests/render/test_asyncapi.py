"""The cluster objects of an async API (cli/render/asyncapi.py): the KEDA trigger as KEDA 2.20 reads it,
the pods' settings as the runtime reads them, the front apart from the API's accelerators, the queue's
Terraform values, IAM scoped to the API's own queue and prefix, and one-line refusals where it cannot render.
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest
import yaml

from mlkit.render import asyncapi
from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from mlkit_runtime.settings import Settings
from tests.conftest import EXAMPLES, mlkit
from tests.terraform.test_gcp_static import plain

KEDA_SQS = json.loads((Path(__file__).parent / "data" / "keda" / "aws-sqs-queue-2.20.json").read_text())
SPEC = EXAMPLES / "async" / "mlkit.yaml"
GPU_SPEC = """
project: acme
cloud: aws
region: eu-west-1
cluster:
  kubernetes_version: "1.35"
  node_pools:
    - {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 3}
    - {name: gpu, instance_type: g5.xlarge, min_nodes: 0, max_nodes: 2}
apis:
  - name: video
    kind: async
    predictor: predictor.py:Predictor
    compute: {cpu: 2, memory: 8Gi, gpu: 1}
    queue: {visibility_timeout_s: 900, max_attempts: 4, result_retention_days: 30, max_payload_bytes: 104857600}
    autoscaling: {min_replicas: 0, max_replicas: 8, target_queued: 3}
"""


def docs(files: dict[str, str], api: str, name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[f"infra/k8s/{api}/{name}.yaml"]) if d]


def deployment(files: dict[str, str], api: str, track: str) -> dict:
    return next(d for d in docs(files, api, "deployment") if d["metadata"]["labels"]["mlkit.dev/track"] == track)


def env_of(deployment: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_worker_trigger_takes_only_keda_2_20_aws_sqs_queue_metadata_and_the_authentication_it_names():
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

    files = render(load(SPEC))
    auth, worker = [d for d in docs(files, "documents", "scaledobject") if d["metadata"]["name"] != "documents"]
    assert TriggerAuthentication.model_validate(auth).model_dump(by_alias=True, exclude_none=True, mode="json") == auth
    assert ScaledObject.model_validate(worker).model_dump(by_alias=True, exclude_none=True, mode="json") == worker
    assert auth["spec"]["podIdentity"]["provider"] in KEDA_SQS["pod_identity_providers"]
    assert set(auth["spec"]["podIdentity"]) <= set(KEDA_SQS["pod_identity_aws"]["fields"]) - {"identityOwner"}  # the operator's role: the default
    (trigger,) = worker["spec"]["triggers"]
    assert trigger["type"] == KEDA_SQS["trigger"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    meta = trigger["metadata"]
    assert set(meta) <= set(KEDA_SQS["metadata_keys"]) and not set(meta) & set(KEDA_SQS["deprecated"])
    assert set(KEDA_SQS["required"]) <= set(meta) and set(meta) & set(KEDA_SQS["one_of_required"])
    assert all(meta[key].isdigit() for key in KEDA_SQS["integer_keys"] if key in meta)
    assert meta == {"queueURL": "https://sqs.us-west-2.amazonaws.com/ACCOUNT-ID/async-demo-documents", "queueLength": "10", "awsRegion": "us-west-2"}
    assert worker["spec"]["scaleTargetRef"]["name"] == "documents-worker"
    assert (worker["spec"]["minReplicaCount"], worker["spec"]["maxReplicaCount"]) == (0, 5)


def test_pods_carry_the_settings_the_runtime_reads_for_their_mode():
    files = render(load(SPEC), Facts(aws_account_id="123456789012"))
    for track in ("front", "worker"):
        env = env_of(deployment(files, "documents", track))
        settings = Settings.load(environ={k: v for k, v in env.items() if k.startswith("MLKIT_") and k != "MLKIT_CONFIG"})
        assert settings.mode == track
        assert settings.queue == "sqs:https://sqs.us-west-2.amazonaws.com/123456789012/async-demo-documents"
        assert settings.results == "s3://async-demo-models-123456789012/async/documents"
        assert (settings.visibility_timeout_s, settings.max_attempts, settings.max_body_bytes) == (60, 3, 1048576)
        assert env["AWS_REGION"] == "us-west-2"
    # Only the worker dead-letters (a request that failed its last attempt); the front never reads the DLQ.
    assert env_of(deployment(files, "documents", "worker"))["MLKIT_DEAD_LETTER"] == "sqs:https://sqs.us-west-2.amazonaws.com/123456789012/async-demo-documents-dead-letter"
    assert "MLKIT_DEAD_LETTER" not in env_of(deployment(files, "documents", "front"))


def test_the_front_is_a_small_pod_off_the_accelerators_and_the_workers_take_the_apis_compute():
    files = render(loads(GPU_SPEC))
    front, worker = deployment(files, "video", "front"), deployment(files, "video", "worker")
    fpod, wpod = front["spec"]["template"]["spec"], worker["spec"]["template"]["spec"]
    fres, wres = fpod["containers"][0]["resources"], wpod["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in fres["requests"] and not fpod.get("tolerations") and not fpod.get("nodeSelector")
    assert "initContainers" not in fpod  # no model to fetch
    assert fres["limits"]["memory"] == f"{256 + 200}Mi"  # room for two copies of a 100 MiB payload
    assert wres["requests"]["nvidia.com/gpu"] == 1 and wpod["nodeSelector"]["mlkit.dev/pool"] == "gpu"
    service = docs(files, "video", "service")[0]
    assert service["spec"]["selector"] == {"mlkit.dev/api": "video", "mlkit.dev/track": "front"}
    front_scaler = next(d for d in docs(files, "video", "scaledobject") if d["metadata"]["name"] == "video")
    assert front_scaler["spec"]["minReplicaCount"] == 1  # it answers 202: never at zero
    assert 'mlkit_dev_track="front"' in front_scaler["spec"]["triggers"][0]["metadata"]["query"]
    worker_scaler = next(d for d in docs(files, "video", "scaledobject") if d["metadata"]["name"] == "video-worker")
    assert worker_scaler["spec"]["triggers"][0]["metadata"]["queueLength"] == "3"
    assert worker_scaler["spec"]["triggers"][0]["metadata"]["awsRegion"] == "eu-west-1"


def test_queue_settings_reach_the_cluster_stack_and_kedas_role_reads_only_these_queues():
    files = render(loads(GPU_SPEC))
    cluster = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    assert cluster["async_apis"] == {"video": {"visibility_timeout_s": 900, "max_attempts": 4, "result_retention_days": 30, "worker_role": "acme-video-worker",
                                               "model_read": []}}  # no model: the workers read nothing of the bucket but their records
    addons = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert addons["async_queue_names"] == ["acme-video"]
    assert "infra/terraform/cluster/modules/async-queue/main.tf" in files
    longest = asyncapi.queue_name(loads(GPU_SPEC.replace("project: acme", "project: " + "p" * 20).replace("name: video", "name: " + "v" * 40)), "v" * 40)
    assert len(longest + asyncapi.DEAD_LETTER_SUFFIX) <= 80  # SQS's longest queue name
    main = plain(hcl2.loads(files["infra/terraform/addons/main.tf"]))
    (keda,) = [d["aws_iam_policy_document"]["keda"] for d in main["data"] if "keda" in d.get("aws_iam_policy_document", {})]
    (statement,) = keda["statement"]
    assert statement["actions"] == ["sqs:GetQueueAttributes"]
    assert "for name in var.async_queue_names" in json.dumps(statement["resources"])
    (role,) = [m["keda_role"] for m in main["module"] if "keda_role" in m]
    assert role["service_accounts"] == ["${var.namespace}:keda-operator"]
    serving = files["infra/terraform/addons/serving.tf"]
    assert "roleArn = module.keda_role.role_arn" in serving
    # A project without async APIs gets neither the role nor the chart values.
    plain_files = render(load(EXAMPLES / "sentiment" / "mlkit.yaml"))
    assert "keda_role" not in plain_files["infra/terraform/addons/main.tf"] + plain_files["infra/terraform/addons/serving.tf"]
    assert "async_apis" not in json.loads(plain_files["infra/terraform/cluster/mlkit.auto.tfvars.json"])


# What each side of the runtime calls (runtime/asyncq/front.py, worker.py through aws.py), as IAM actions:
# DeleteMessageBatch and ChangeMessageVisibilityBatch are authorised as their single-message actions.
FRONT_NEEDS = {"Enqueue": (["sqs:SendMessage"], "${aws_sqs_queue.this.arn}"), "Records": (["s3:GetObject", "s3:PutObject"], "${local.results_arn}")}
WORKER_NEEDS = {
    "Consume": (["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"], "${aws_sqs_queue.this.arn}"),
    "DeadLetter": (["sqs:SendMessage"], "${aws_sqs_queue.dead_letter.arn}"),
    "Results": (["s3:GetObject", "s3:PutObject"], "${local.results_arn}"),
}


def test_the_front_and_the_workers_each_get_what_their_code_calls_on_their_own_queue_and_prefix_and_nothing_more():
    main = plain(hcl2.loads((Path(asyncapi.__file__).resolve().parents[2] / "terraform/aws/async-queue/main.tf").read_text()))
    policies = {name: doc for d in main["data"] for name, doc in d.get("aws_iam_policy_document", {}).items()}
    for name, needs in (("front", FRONT_NEEDS), ("worker", WORKER_NEEDS)):
        granted = {s["sid"]: (sorted(s["actions"]), *s["resources"]) for s in policies[name]["statement"]}
        assert all("effect" not in s or s["effect"] == "Allow" for s in policies[name]["statement"])
        assert granted == needs, name  # both ways: every call is granted, and no grant beyond the calls
    # The front never takes work off the queue; the workers never put work on it.
    front = {a for s in policies["front"]["statement"] for a in s["actions"]}
    assert not front & {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    worker = {(a, r) for s in policies["worker"]["statement"] for a in s["actions"] for r in s["resources"]}
    assert ("sqs:SendMessage", "${aws_sqs_queue.this.arn}") not in worker
    assert [s["actions"] for s in policies["depth"]["statement"]] == [["sqs:GetQueueAttributes"]]


def test_each_side_has_a_role_and_service_account_of_its_own_and_neither_reads_the_whole_bucket():
    files = render(loads(GPU_SPEC))
    main = plain(hcl2.loads(files["infra/terraform/cluster/main.tf"]))
    modules = {name: m for block in main["module"] for name, m in block.items()}
    front, worker = modules["async_front_role"], modules["async_worker_role"]
    assert front["service_accounts"] == ["${var.namespace}:${each.key}"] and "policy_arns" not in front
    assert worker["service_accounts"] == ["${var.namespace}:${each.key}-worker"] and worker["name"] == "${each.value.worker_role}"
    # Not the bucket-wide model read the other APIs' roles attach: the workers' model grant is in their queue policy.
    assert "policy_arns" not in worker
    policies = {name: r for block in main["resource"] for name, r in block.get("aws_iam_role_policy", {}).items()}
    assert policies["async_front"]["role"] == "${module.async_front_role[each.key].role_name}"
    assert policies["async_front"]["policy"] == "${module.async_queue[each.key].front_policy_json}"
    assert policies["async_worker"]["role"] == "${module.async_worker_role[each.key].role_name}"
    assert policies["async_worker"]["policy"] == "${module.async_queue[each.key].worker_policy_json}"
    # The serving role (model read) is not made for an async API: its service account is the front's.
    assert modules["api_role"]["for_each"] == "${setsubtract(toset(var.api_names), keys(var.async_apis))}"
    accounts = {d["metadata"]["name"]: d["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for d in docs(files, "video", "serviceaccount")}
    assert accounts == {"video": "arn:aws:iam::ACCOUNT-ID:role/acme-video", "video-worker": "arn:aws:iam::ACCOUNT-ID:role/acme-video-worker"}
    assert deployment(files, "video", "front")["spec"]["template"]["spec"]["serviceAccountName"] == "video"
    assert deployment(files, "video", "worker")["spec"]["template"]["spec"]["serviceAccountName"] == "video-worker"


def test_a_long_api_name_gets_a_worker_role_name_iam_takes():
    from mlkit.clouds.aws import worker_role_name

    spec = loads(GPU_SPEC.replace("acme", "a" * 20).replace("video", "v" * 40))
    name = worker_role_name(spec, "v" * 40)
    assert len(name) <= 64 and name.endswith("-worker") and name.startswith("a" * 20 + "-")


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda t: t.replace("cluster:\n  kubernetes_version: \"1.35\"\n  node_pools:\n    - {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 5}",
                             "cluster:\n  existing: {name: prod}"), "cluster.existing"),
    ],
)
def test_what_cannot_render_for_a_cluster_is_one_line(edit, says, project):
    root = project("async")
    spec = root / "mlkit.yaml"
    spec.write_text(edit(spec.read_text()))
    result = mlkit("render", cwd=root)
    assert result.returncode == 1, result.stderr
    assert says in result.stderr and "apis[0].kind" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (root / "infra").exists()  # nothing half-written


def test_kedas_chart_values_for_the_operators_role_are_keys_of_the_pinned_chart():
    from tests.terraform.test_chart_values import chart_data, releases, unknown_keys, value_paths, yamlencode_object

    keda = releases("async")["keda"]
    paths = [p for expression in keda["values"] for p in value_paths(yamlencode_object(expression))]
    assert ("podIdentity", "aws", "irsa", "roleArn") in paths and ("podIdentity", "aws", "irsa", "enabled") in paths
    assert unknown_keys(paths, chart_data()["keda"]) == []


def test_workers_aim_at_the_documented_default_of_five_queued_requests_each():
    files = render(loads(GPU_SPEC.replace(", target_queued: 3", "")))
    worker = next(d for d in docs(files, "video", "scaledobject") if d["metadata"]["name"] == "video-worker")
    assert worker["spec"]["triggers"][0]["metadata"]["queueLength"] == "5"


def test_an_api_named_like_an_async_apis_workers_is_refused_in_one_line(tmp_path):
    from mlkit.errors import UserError

    text = GPU_SPEC + "  - {name: video-worker, predictor: predictor.py:Predictor}\n"
    with pytest.raises(UserError, match=r"apis\[1\]\.name.*worker objects of async API 'video'"):
        loads(text)


@pytest.mark.parametrize(
    ("model", "read"),
    [
        (None, []),
        ("model/", [{"bucket": "", "prefix": "video/"}]),  # uploaded on apply under <api>/ in the model bucket
        ("s3://weights/video/v3/", [{"bucket": "weights", "prefix": "video/v3/"}]),
    ],
)
def test_the_workers_read_their_own_model_and_no_other_object_of_the_bucket(model, read):
    text = GPU_SPEC + "    model: " + model + "\n" if model else GPU_SPEC
    files = render(loads(text))
    assert json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["async_apis"]["video"]["model_read"] == read
    module = plain(hcl2.loads(files["infra/terraform/cluster/modules/async-queue/main.tf"]))
    (worker,) = [d["aws_iam_policy_document"]["worker"] for d in module["data"] if "worker" in d.get("aws_iam_policy_document", {})]
    model_statements = [d["statement"]["content"][0] for d in worker["dynamic"]]
    assert [(s["sid"], s["actions"], s["resources"]) for s in model_statements] == [
        ("Model", ["s3:GetObject", "s3:GetObjectVersion"], ["${statement.value.bucket_arn}/${statement.value.prefix}*"]),
        ("ModelListing", ["s3:ListBucket"], ["${statement.value.bucket_arn}"]),
    ]
    assert model_statements[1]["condition"][0] == {"test": "StringLike", "variable": "s3:prefix", "values": ["${statement.value.prefix}*"]}
    # Every other role that reads models is denied the async APIs' payloads and results.
    main = plain(hcl2.loads(files["infra/terraform/cluster/main.tf"]))
    bucket = next(block["model_bucket"] for block in main["module"] if "model_bucket" in block)
    assert bucket["private_prefixes"] == '${length(var.async_apis) > 0 ? ["async/"] : []}'


def test_an_api_named_async_is_refused_in_one_line():
    from mlkit.errors import UserError

    with pytest.raises(UserError, match=r"apis\[1\]\.name.*'async' is the model bucket's folder of async APIs' payloads and results"):
        loads(GPU_SPEC + "  - {name: async, predictor: predictor.py:Predictor}\n")
