"""An async API on a GKE cluster mlkit creates (cli/render/asyncapi.py with cli/clouds/gcp.py, terraform/gcp/async-queue):
the KEDA trigger as KEDA 2.20 reads it (its prometheus scaler on Cloud Monitoring, not the deprecated gcp-pubsub), the
pods' settings as the runtime parses them, the Pub/Sub queue's Terraform (dead letters that really happen, the grants
Pub/Sub's service agent needs), IAM both ways (what the API's account and KEDA's account may do, and nothing more),
results expiring under their prefix, and checkov on both stacks.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import hcl2
import kubernetes_validate
import pytest
import yaml

from mlkit.render.infra import render
from mlkit.spec.loader import loads
from mlkit_runtime.asyncq import pubsub_paths
from mlkit_runtime.settings import Settings
from tests.render.test_k8s import KUBERNETES_VERSION
from tests.terraform.test_gcp_static import plain

KEDA_GCP = json.loads((Path(__file__).parent / "data" / "keda" / "gcp-pubsub-2.20.json").read_text())
SPEC = """
project: acme
cloud: gcp
region: europe-west4
gcp_project: acme-prod
cluster:
  node_pools:
    - {name: cpu, instance_type: e2-standard-4, min_nodes: 1, max_nodes: 3}
apis:
  - name: video
    kind: async
    predictor: predictor.py:Predictor
    model: model/
    queue: {visibility_timeout_s: 120, max_attempts: 6, result_retention_days: 40}
    autoscaling: {min_replicas: 0, max_replicas: 4, target_queued: 3}
  - name: web
    predictor: predictor.py:Predictor
"""
QUEUE = "projects/acme-prod/topics/acme-video/subscriptions/acme-video"


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render(loads(SPEC))


def docs(files: dict[str, str], api: str, name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[f"infra/k8s/{api}/{name}.yaml"]) if d]


def tf(files: dict[str, str], path: str) -> dict:
    return plain(hcl2.loads(files[path]))


def blocks(parsed: dict, kind: str) -> dict[str, dict]:
    """`resource` / `data` / `module` blocks by type then name (modules: by name)."""
    out: dict[str, dict] = {}
    for block in parsed.get(kind, []):
        for key, value in block.items():
            out.setdefault(key, {}).update(value) if kind != "module" else out.update({key: value})
    return out


def test_workers_scale_on_the_subscription_backlog_through_kedas_non_deprecated_prometheus_scaler(files):
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

    auth, worker = [d for d in docs(files, "video", "scaledobject") if d["metadata"]["name"] != "video"]
    assert TriggerAuthentication.model_validate(auth).model_dump(by_alias=True, exclude_none=True, mode="json") == auth
    assert ScaledObject.model_validate(worker).model_dump(by_alias=True, exclude_none=True, mode="json") == worker
    assert auth["spec"] == {"podIdentity": {"provider": "gcp"}} and "gcp" in KEDA_GCP["pod_identity_providers"]
    (trigger,) = worker["spec"]["triggers"]
    assert trigger["type"] == KEDA_GCP["trigger"] and trigger["type"] not in KEDA_GCP["deprecated_triggers"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    meta = trigger["metadata"]
    assert set(meta) <= set(KEDA_GCP["metadata_keys"]) and set(KEDA_GCP["required"]) <= set(meta)
    assert "authModes" not in meta  # KEDA: no other auth beside GCP workload identity
    assert meta["serverAddress"] == KEDA_GCP["gcp_server_address"].format(project="acme-prod")
    assert all(float(meta[key]) >= 0 for key in KEDA_GCP["float_keys"] if key in meta)
    assert meta["threshold"] == "3"  # target_queued
    query = meta["query"]
    labels = KEDA_GCP["pubsub_query_labels"]
    assert f'__name__="{KEDA_GCP["pubsub_backlog_metric"]}"' in query
    assert f'monitored_resource="{labels["monitored_resource"]}"' in query
    assert 'project_id="acme-prod"' in query and 'subscription_id="acme-video"' in query  # the subscription the cluster stack makes
    assert query.startswith("sum(") and query.count("{") == query.count("}") == 1
    assert (worker["spec"]["minReplicaCount"], worker["spec"]["maxReplicaCount"]) == (0, 4)


def test_manifests_pass_strict_kubernetes_validation(files):
    built_in = [d for path, text in files.items() if path.startswith("infra/k8s/video/") for d in yaml.safe_load_all(text) if d]
    built_in = [d for d in built_in if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in built_in} >= {"Deployment", "Service", "ServiceAccount", "ConfigMap"}
    for doc in built_in:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_pods_carry_the_pubsub_and_gcs_settings_the_runtime_parses_and_act_as_the_apis_own_account(files):
    deployments = {d["metadata"]["labels"]["mlkit.dev/track"]: d for d in docs(files, "video", "deployment")}
    for track, deployment in deployments.items():
        env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        settings = Settings.load(environ={k: v for k, v in env.items() if k.startswith("MLKIT_") and k != "MLKIT_CONFIG"})
        assert settings.mode == track
        assert settings.queue == f"pubsub:{QUEUE}"
        assert pubsub_paths.parse(QUEUE) == ("projects/acme-prod/topics/acme-video", "projects/acme-prod/subscriptions/acme-video")
        assert settings.results == "gs://acme-models-acme-prod/async/video"
        assert (settings.visibility_timeout_s, settings.max_attempts) == (120, 6)
        assert env["GOOGLE_CLOUD_PROJECT"] == "acme-prod" and "AWS_REGION" not in env
        if track == "worker":
            assert env["MLKIT_DEAD_LETTER"] == "pubsub:projects/acme-prod/topics/acme-video-dead-letter"
            pubsub_paths.check(QUEUE, env["MLKIT_DEAD_LETTER"][len("pubsub:"):])
        else:
            assert "MLKIT_DEAD_LETTER" not in env
    accounts = {d["metadata"]["name"]: d["metadata"]["annotations"] for d in docs(files, "video", "serviceaccount")}
    assert accounts == {
        "video": {"iam.gke.io/gcp-service-account": "acme-video@acme-prod.iam.gserviceaccount.com"},
        "video-worker": {"iam.gke.io/gcp-service-account": "acme-video-worker@acme-prod.iam.gserviceaccount.com"},
    }
    for track, deployment in deployments.items():  # each side acts as its own account
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == {"front": "video", "worker": "video-worker"}[track]
    (web,) = docs(files, "web", "serviceaccount")  # a realtime API keeps the shared read-only account
    assert web["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == "acme-serving@acme-prod.iam.gserviceaccount.com"


def test_the_cluster_stack_gives_the_async_api_its_own_account_queue_and_expiring_results(files):
    values = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    assert values["async_apis"] == {"video": {
        "visibility_timeout_s": 120, "max_attempts": 6, "result_retention_days": 40, "account_id": "acme-video", "worker_account_id": "acme-video-worker",
        "model_read": [{"bucket": "", "prefix": "video/"}],  # model/ is uploaded under video/ in the model bucket
    }}
    main = tf(files, "infra/terraform/cluster/main.tf")
    resources, modules = blocks(main, "resource"), blocks(main, "module")
    queue = modules["async_queue"]
    assert queue["for_each"] == "${var.async_apis}" and queue["source"] == "./modules/async-queue"
    assert queue["ack_deadline_s"] == "${each.value.visibility_timeout_s}" and queue["max_attempts"] == "${each.value.max_attempts}"
    assert queue["results_prefix"] == "async/${each.key}" and queue["bucket"] == "${module.model_bucket.bucket_name}"
    assert queue["front_member"] == "serviceAccount:${google_service_account.async[each.key].email}"
    assert queue["worker_member"] == "serviceAccount:${google_service_account.async_worker[each.key].email}"
    assert modules["model_bucket"]["expiring_prefixes"] == '${{for name, api in var.async_apis : "async/${name}" => api.result_retention_days}}'
    assert resources["google_service_account"]["async"]["account_id"] == "${each.value.account_id}"
    assert resources["google_service_account"]["async_worker"]["account_id"] == "${each.value.worker_account_id}"
    identity = resources["google_service_account_iam_member"]
    # Each Kubernetes service account may act as its own Google account only.
    assert identity["async_workload_identity"]["member"] == "serviceAccount:${module.gke.workload_pool}[${var.namespace}/${each.key}]"
    assert identity["async_workload_identity"]["service_account_id"] == "${google_service_account.async[each.key].name}"
    assert identity["async_worker_workload_identity"]["member"] == "serviceAccount:${module.gke.workload_pool}[${var.namespace}/${each.key}-worker]"
    assert identity["async_worker_workload_identity"]["service_account_id"] == "${google_service_account.async_worker[each.key].name}"
    assert {identity[k]["role"] for k in ("async_workload_identity", "async_worker_workload_identity")} == {"roles/iam.workloadIdentityUser"}
    # The shared serving account is not bound to the async API's Kubernetes account: it acts only as its own.
    assert identity["api_workload_identity"]["for_each"] == "${setsubtract(var.api_names, keys(var.async_apis))}"
    read = resources["google_storage_bucket_iam_member"]["async_model_read"]
    assert (read["role"], read["bucket"]) == ("roles/storage.objectViewer", "${module.model_bucket.bucket_name}")
    assert read["member"] == "serviceAccount:${google_service_account.async_worker[each.key].email}"  # the front never loads the model
    # ... and the workers read their own model's objects only, and listings (checked against the bucket), never
    # another async API's payloads and results; a model in another bucket gets no binding here.
    assert read["for_each"] == ('${{for name, api in var.async_apis : name => api.model_read[0].prefix '
                                'if length(api.model_read) > 0 && try(api.model_read[0].bucket, "") == ""}}')
    assert read["condition"][0]["expression"].replace('\\"', '"') == (
        'resource.type == "storage.googleapis.com/Bucket" || '
        'resource.name.startsWith("projects/_/buckets/${module.model_bucket.bucket_name}/objects/${each.value}")')
    assert read["lifecycle"][0]["create_before_destroy"] is True
    # The serving and batch accounts' model read leaves out every object under async/.
    assert modules["model_bucket"]["private_prefixes"] == "${local.private_prefixes}"
    locals_ = {k: v for block in main["locals"] for k, v in block.items()}
    assert locals_["private_prefixes"] == '${length(var.async_apis) > 0 ? ["async/"] : []}'
    reader = blocks(plain(hcl2.loads(files["infra/terraform/cluster/modules/model-bucket/main.tf"])), "resource")["google_storage_bucket_iam_member"]["reader"]
    (not_results,) = reader["dynamic"]
    assert not_results["condition"]["content"][0]["expression"].replace('\\"', '"') == (
        '${join(" && ", [for prefix in var.private_prefixes : "!resource.name.startsWith("projects/_/buckets/${var.name}/objects/${prefix}")"])}')
    assert reader["lifecycle"][0]["create_before_destroy"] is True
    bucket = plain(hcl2.loads(files["infra/terraform/cluster/modules/model-bucket/main.tf"]))
    rules = blocks(bucket, "resource")["google_storage_bucket"]["this"]["dynamic"]
    (expiring,) = [d["lifecycle_rule"] for d in rules if "lifecycle_rule" in d]
    assert expiring["for_each"] == "${var.expiring_prefixes}"
    (condition,) = expiring["content"][0]["condition"]
    assert condition == {"age": "${lifecycle_rule.value}", "matches_prefix": ["${lifecycle_rule.key}/"], "with_state": "ANY"}
    assert expiring["content"][0]["action"] == [{"type": "Delete"}]


def test_the_queue_dead_letters_for_real_and_grants_the_api_only_its_own_queue_and_prefix(files):
    module = tf(files, "infra/terraform/cluster/modules/async-queue/main.tf")
    r = blocks(module, "resource")
    sub = r["google_pubsub_subscription"]["this"]
    assert sub["topic"] == "${google_pubsub_topic.this.id}" and sub["ack_deadline_seconds"] == "${var.ack_deadline_s}"
    assert sub["expiration_policy"] == [{"ttl": ""}]  # never expires while idle
    assert sub["dead_letter_policy"] == [{"dead_letter_topic": "${google_pubsub_topic.dead_letter.id}", "max_delivery_attempts": "${var.max_attempts}"}]
    assert sub["retry_policy"] == [{"minimum_backoff": "10s", "maximum_backoff": "600s"}]
    assert sub["depends_on"] == ["${google_pubsub_topic_iam_member.dead_letter_agent}"]
    # A topic keeps nothing by itself: the dead-letter topic has a subscription that keeps what lands there.
    assert r["google_pubsub_subscription"]["dead_letter"]["topic"] == "${google_pubsub_topic.dead_letter.id}"
    agent = "${local.service_agent}"
    locals_ = {k: v for block in module["locals"] for k, v in block.items()}
    assert locals_["service_agent"] == "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    grants = {
        (kind, name): (b.get("topic") or b.get("subscription") or b.get("bucket"), b["role"], b["member"])
        for kind in ("google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member", "google_storage_bucket_iam_member")
        for name, b in r[kind].items()
    }
    assert sorted(grants.values()) == sorted([
        # Pub/Sub's service agent: forward to the dead-letter topic, and ack the source message it forwarded.
        ("${google_pubsub_topic.dead_letter.name}", "roles/pubsub.publisher", agent),
        ("${google_pubsub_subscription.this.name}", "roles/pubsub.subscriber", agent),
        # The front (front.py): publish to its topic, create and read objects under its prefix; no pull, no ack.
        ("${google_pubsub_topic.this.name}", "roles/pubsub.publisher", "${var.front_member}"),
        ("${var.bucket}", "roles/storage.objectCreator", "${var.front_member}"),
        ("${var.bucket}", "roles/storage.objectViewer", "${var.front_member}"),
        # The workers (worker.py): pull, extend and ack, dead-letter, read and overwrite objects under its prefix;
        # never publish to the API's topic.
        ("${google_pubsub_subscription.this.name}", "roles/pubsub.subscriber", "${var.worker_member}"),
        ("${google_pubsub_topic.dead_letter.name}", "roles/pubsub.publisher", "${var.worker_member}"),
        ("${var.bucket}", "roles/storage.objectUser", "${var.worker_member}"),
    ])
    for name in ("front_results_create", "front_results_read", "worker_results"):
        (condition,) = r["google_storage_bucket_iam_member"][name]["condition"]
        assert condition["expression"] == 'resource.name.startsWith(\\"${local.results}\\")'
    assert locals_["results"] == "projects/_/buckets/${var.bucket}/objects/${var.results_prefix}/"
    assert locals_["retention"] == '${min(var.result_retention_days, 31) * 86400}s'
    # No project-wide grant in the module: everything names its own topic, subscription or bucket.
    assert "google_project_iam_member" not in r


def test_kedas_operator_has_an_account_of_its_own_that_only_reads_monitoring(files):
    main = tf(files, "infra/terraform/addons/main.tf")
    r = blocks(main, "resource")
    assert r["google_service_account"]["keda"]["account_id"] == "${var.cluster_name}-keda"
    wi = r["google_service_account_iam_member"]["keda_workload_identity"]
    pool = "${data.google_container_cluster.this.workload_identity_config[0].workload_pool}"
    assert wi["member"] == f"serviceAccount:{pool}[${{var.namespace}}/{KEDA_GCP['operator_service_account']}]"
    assert r["google_project_iam_member"] == {
        "keda_monitoring": {
            "project": "${var.project_id}", "role": KEDA_GCP["gcp_operator_role"], "member": "serviceAccount:${google_service_account.keda.email}",
        }
    }
    assert "podIdentity = { gcp = { enabled = true, gcpIAMServiceAccount = google_service_account.keda.email } }" in files["infra/terraform/addons/serving.tf"]
    # A GCP project without async APIs gets neither the account nor the chart values.
    realtime = SPEC.replace("    kind: async\n", "").replace("    queue: {visibility_timeout_s: 120, max_attempts: 6, result_retention_days: 40}\n", "")
    plain_files = render(loads(realtime.replace("    autoscaling: {min_replicas: 0, max_replicas: 4, target_queued: 3}\n", "")))
    assert "keda" not in plain_files["infra/terraform/addons/main.tf"] and "podIdentity" not in plain_files["infra/terraform/addons/serving.tf"]
    assert "async_apis" not in json.loads(plain_files["infra/terraform/cluster/mlkit.auto.tfvars.json"])


def test_kedas_gcp_chart_values_are_keys_of_the_pinned_chart():
    from tests.terraform.test_chart_values import chart_data

    keys = set(chart_data()["keda"]["keys"])
    assert set(KEDA_GCP["chart_values_gcp"]) <= keys


def test_terraform_fmt_and_checkov_pass_on_both_stacks(files, tmp_path):
    for path, text in files.items():
        if path.startswith("infra/terraform/"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
    fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff"], cwd=tmp_path / "infra/terraform", capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    checkov = os.environ.get("MLKIT_CHECKOV")
    if not checkov or not os.access(checkov, os.X_OK):
        pytest.skip("MLKIT_CHECKOV does not name a checkov binary (scripts/setup.sh installs one in .venv-checkov)")
    from tests.terraform.test_checkov import ALLOWED_SKIPS

    for stack in ("cluster", "addons"):
        out = subprocess.run([checkov, "-d", str(tmp_path / "infra/terraform" / stack), "--framework", "terraform", "--skip-download", "-o", "json"],
                             capture_output=True, text=True, timeout=600)
        report = json.loads(out.stdout)
        report = report[0] if isinstance(report, list) else report
        results = report["results"]
        assert [(c["check_id"], c["resource"]) for c in results["failed_checks"]] == [], stack
        assert {c["check_id"] for c in results["skipped_checks"]} <= ALLOWED_SKIPS
        checked = {c["resource"] for c in results["passed_checks"]}
        if stack == "cluster":
            assert any("google_pubsub" in name for name in checked), sorted(checked)  # checkov read the module


def test_an_async_api_named_keda_does_not_take_the_keda_operators_google_account():
    """KEDA's operator acts as `<project>-keda` (addons/main.tf); an API's own account is `<project>-<api>`: an API
    named keda would be bound to the same account, and its pods would read monitoring while KEDA used its queue."""
    files = render(loads(SPEC.replace("name: video", "name: keda")))
    account = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["async_apis"]["keda"]["account_id"]
    assert account != "acme-keda" and account.startswith("acme-") and 6 <= len(account) <= 30
    sa, worker = docs(files, "keda", "serviceaccount")  # the front's, then the workers'
    assert worker["metadata"]["name"] == "keda-worker"
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == f"{account}@acme-prod.iam.gserviceaccount.com"


def test_a_project_name_pubsub_refuses_is_one_problem_on_the_project():
    """Pub/Sub refuses topic and subscription ids that start with "goog" (projects.subscriptions.create, name);
    an async API's queue is `<project>-<api>`, so such a project name would fail at apply, not at validate."""
    from tests.spec.refusals import only

    found = only(SPEC.replace("project: acme", "project: googly"))
    assert ": project: " in found and "goog" in found and "\n" not in found
    realtime = SPEC.replace("kind: async", "kind: realtime").replace("    queue: {visibility_timeout_s: 120, max_attempts: 6, result_retention_days: 40}\n", "")
    realtime = realtime.replace(", target_queued: 3", "")
    assert loads(realtime.replace("project: acme", "project: googly"))  # without async APIs the name is fine
