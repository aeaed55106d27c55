"""What a batch API's pods may write (cli/clouds/jobaccess.py): the grant the cluster stack renders, per cloud,
the spec's `batch.output` checks, and realtime APIs' identities left as they were."""

from __future__ import annotations

import io
import json

import hcl2
import pytest
import yaml

from mlkit.clouds import jobaccess
from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLES
from tests.spec.refusals import only
from tests.terraform.test_gcp_static import plain

GCP_SPEC = """\
project: shop
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
  node_pools:
    - {name: cpu, instance_type: e2-standard-4}
apis:
  - name: ranker
    predictor: predictor.py:Predictor
    model: gs://acme-models/ranker/v1/
  - name: embed
    kind: batch
    predictor: predictor.py:Predictor
    model: gs://acme-models/embed/v1/
  - name: score
    kind: batch
    predictor: predictor.py:Predictor
    model: gs://acme-models/score/v1/
    batch: {output: "gs://acme-results/nightly/score/"}
"""


def hcl(text: str) -> dict:
    return dict(plain(hcl2.load(io.StringIO(text))))


def blocks(doc: dict, kind: str, type_: str) -> dict:
    return {name: body for block in doc.get(kind, []) for t, named in block.items() if t == type_ for name, body in named.items()}


def test_aws_batch_api_gets_its_prefix_on_its_own_role_and_nothing_more():
    files = render(load(EXAMPLES / "batch" / "mlkit.yaml"))
    tfvars = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    assert tfvars["batch_apis"] == {"reviews": {"bucket": None, "prefix": "jobs/reviews/"}}
    doc = hcl(files["infra/terraform/cluster/main.tf"])
    policy = blocks(doc, "data", "aws_iam_policy_document")["batch_output"]
    files_stmt, listing = policy["statement"]
    assert files_stmt["actions"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    assert files_stmt["resources"] == ["arn:aws:s3:::${local.batch_buckets[each.key]}/${each.value.prefix}*"]
    assert listing["actions"] == ["s3:ListBucket"] and listing["condition"][0]["values"] == ["${each.value.prefix}*"]
    attached = blocks(doc, "resource", "aws_iam_role_policy")["batch_output"]
    assert attached["role"] == "${module.api_role[each.key].role_name}"


def test_stacks_without_batch_apis_render_no_batch_grant():
    for example in ("sentiment", "gcp-l4"):
        files = render(load(EXAMPLES / example / "mlkit.yaml"))
        assert "batch_apis" not in json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
        assert "batch" not in files["infra/terraform/cluster/variables.tf"]


def test_gcp_batch_apis_get_accounts_of_their_own_with_a_conditional_binding():
    spec = loads(GCP_SPEC)
    files = render(spec)
    tfvars = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    assert tfvars["batch_apis"] == {
        "embed": {"bucket": None, "prefix": "jobs/embed/", "account_id": "shop-embed"},
        "score": {"bucket": "acme-results", "prefix": "nightly/score/", "account_id": "shop-score"},
    }
    doc = hcl(files["infra/terraform/cluster/main.tf"])
    resources = {t: blocks(doc, "resource", t) for t in ("google_service_account", "google_service_account_iam_member", "google_storage_bucket_iam_member")}
    # The shared reader keeps only the realtime APIs; each batch API's service account is bound to its own account.
    serving = resources["google_service_account_iam_member"]["api_workload_identity"]
    assert serving["for_each"] == "${setsubtract(var.api_names, concat(keys(var.batch_apis), keys(var.async_apis)))}"
    assert resources["google_service_account_iam_member"]["batch_workload_identity"]["member"].endswith("[${var.namespace}/${each.key}]")
    output = resources["google_storage_bucket_iam_member"]["batch_output"]
    assert output["role"] == "roles/storage.objectUser"
    expression = output["condition"][0]["expression"]
    assert "resource.name.startsWith(" in expression and "projects/_/buckets/${local.batch_buckets[each.key]}/objects/${each.value.prefix}" in expression
    assert resources["google_storage_bucket_iam_member"]["batch_model_read"]["role"] == "roles/storage.objectViewer"

    def annotation(api: str) -> str:
        sa = yaml.safe_load(files[f"infra/k8s/{api}/serviceaccount.yaml"])
        return str(sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"])

    assert annotation("embed") == "shop-embed@acme-ml.iam.gserviceaccount.com"
    assert annotation("score") == "shop-score@acme-ml.iam.gserviceaccount.com"
    assert annotation("ranker") == "shop-serving@acme-ml.iam.gserviceaccount.com"


def test_gcp_account_ids_fit_thirty_characters_and_stay_apart():
    spec = loads(GCP_SPEC.replace("name: embed", "name: embeddings-for-the-catalogue-nightly"))
    long = jobaccess.account_id(spec, "embeddings-for-the-catalogue-nightly")
    other = jobaccess.account_id(spec, "embeddings-for-the-catalogue-weekly")
    assert len(long) <= 30 and len(other) <= 30 and long != other and long[0].isalpha() and not long.endswith("-")
    # "serving" would be the shared reader's account id.
    assert jobaccess.account_id(spec, "serving") != "shop-serving"


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("s3://acme-results/jobs/", "is not a gs:// prefix"),
        ("gs://acme-results/jobs", "each ending in '/'"),
        ("gs://acme-results/", "each ending in '/'"),
        ("gs://acme-results/jobs/*/", "no wildcard"),
        ("gs://acme-results/a/../b/", "'..' folder"),
        ("gs://Acme/x/", "bucket 'Acme'"),
    ],
)
def test_a_bad_batch_output_is_one_line_naming_the_field(output, fragment):
    message = only(GCP_SPEC.replace('output: "gs://acme-results/nightly/score/"', f'output: "{output}"'))
    assert "apis[2].batch.output" in message and fragment in message, message


@pytest.mark.parametrize(
    ("output", "granted", "inside"),
    [
        ("s3://b/jobs/reviews/j1/", "s3://b/jobs/reviews/", True),
        ("s3://b/jobs/reviews/j1", "s3://b/jobs/reviews/", True),
        ("s3://b/jobs/reviews", "s3://b/jobs/reviews/", True),
        ("s3://b/jobs/reviewsX/j1/", "s3://b/jobs/reviews/", False),
        ("s3://b/jobs/other/", "s3://b/jobs/reviews/", False),
        ("s3://c/jobs/reviews/j1/", "s3://b/jobs/reviews/", False),
        ("s3://b/jobs/reviews/../other/", "s3://b/jobs/reviews/", False),
    ],
)
def test_an_output_is_within_its_grant_folder_by_folder(output, granted, inside):
    assert jobaccess.within(output, granted) is inside
