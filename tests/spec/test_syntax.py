"""The naming rules: each accepts the clouds' and Kubernetes' real names and refuses near misses,
matching the whole string (a trailing newline or a look-alike letter never passes)."""

from __future__ import annotations

import pytest

from mlkit.errors import SpecError
from mlkit.render.jinja import hcl_string
from mlkit.spec import syntax
from mlkit.spec.loader import loads

GOOD_S3 = ["my-state", "acme.tf.state", "a1b", "x" * 63]
BAD_S3 = [
    "ab",
    "x" * 64,
    "My-State",
    "acme_state",
    "-acme",
    "acme-",
    "acme..state",
    "10.1.2.3",
    "xn--acme",
    "acme-s3alias",
    "acme--ol-s3",
    "acme\n",
    'x"y',
    "аcme",
]
GOOD_GCS = ["my-state", "acme_state", "a.b.c", ("x" * 63 + ".") * 3 + "x" * 30]
BAD_GCS = ["ab", "x" * 64, "Acme", "acme..state", "10.1.2.3", "goog-state", "my-google-state", "g00gle-x", "acme\n", "_acme", ("x" * 64) + ".b"]


BUCKETS = [(syntax.s3_bucket, GOOD_S3, BAD_S3), (syntax.gcs_bucket, GOOD_GCS, BAD_GCS)]


@pytest.mark.parametrize(
    "check, name, valid", [(check, name, valid) for check, good, bad in BUCKETS for names, valid in ((good, True), (bad, False)) for name in names]
)
def test_bucket_names_as_the_clouds_take_them(check, name, valid):
    assert (check(name) is None) == valid, check(name)


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (
            syntax.aws_region,
            ["us-west-2", "eu-central-1", "us-gov-west-1", "ap-southeast-5"],
            ["us-west-2\n", "us-west", "US-WEST-2", "us-wеst-2", "us-west-2a", "us-central1"],
        ),
        (syntax.gcp_region, ["us-central1", "europe-west4", "asia-northeast3"], ["us-central1\n", "us-central", "us-west-2", "us-central1-a"]),
        (lambda v: syntax.gcp_zone(v, "us-central1"), ["us-central1-a", "us-central1-f"], ["us-central1-a\n", "us-central1-", "us-east1-b", "us-central1-ab"]),
        (syntax.key_prefix, ["mlkit", "teams/ml/prod", "a.b_c-d"], ["", "/mlkit", "mlkit/", "a//b", "a/../b", "./a", "a b", 'a"b', "${x}", "x" * 201]),
    ],
)
def test_whole_string_checks(check, good, bad):
    for value in good:
        assert check(value) is None, value
    for value in bad:
        assert check(value), value


@pytest.mark.parametrize(
    "pattern, good, bad",
    [
        (syntax.AWS_INSTANCE, ["m6i.large", "g5.xlarge", "p5.48xlarge", "u-6tb1.metal"], ["m6i.large\n", "n2-standard-4", "m6i", "M6i.large"]),
        (syntax.GCP_MACHINE, ["n2-standard-4", "g2-standard-8", "ct5lp-hightpu-4t", "n2-custom-4-8192"], ["n2-standard-4\n", "m6i.large", "n2"]),
        (syntax.GCP_PROJECT, ["acme-ml", "my-gcp-project", "example.com:acme-ml"], ["p", "acme-", "Acme-ml", "1acme-ml", "x" * 31, "acme-ml\n"]),
        (syntax.GCP_NAME, ["default", "vpc-1"], ["Default", "vpc_1", "1vpc", "projects/x/global/networks/y"]),
        (syntax.EKS_CLUSTER, ["prod", "Prod_1", "a" * 100], ["-prod", "a" * 101, "prod cluster"]),
        (syntax.GKE_CLUSTER, ["prod", "prod-1"], ["Prod", "prod_1", "a" * 41]),
    ],
)
def test_name_patterns_match_whole_strings(pattern, good, bad):
    for value in good:
        assert pattern.fullmatch(value), value
    for value in bad:
        assert not pattern.fullmatch(value), value


@pytest.mark.parametrize("key", ["team", "example.com/team", "a.b-c_d", "x" * 63, "acme.io/" + "x" * 63])
def test_kubernetes_keys_that_kubernetes_accepts(key):
    assert syntax.qualified_name(key) is None and syntax.reserved_key(key) is None


@pytest.mark.parametrize("key", ["", "-team", "team-", "a b", "x" * 64, "/team", "Example.com/team", "a/b/c", "example.com/", "tëam"])
def test_kubernetes_keys_that_kubernetes_refuses(key):
    assert syntax.qualified_name(key)


@pytest.mark.parametrize(
    "key, owner",
    [
        ("mlkit.dev/pool", "mlkit's own"),
        ("x.mlkit.dev/a", "mlkit's own"),
        ("kubernetes.io/arch", "Kubernetes"),
        ("node-role.kubernetes.io/gpu", "Kubernetes"),
        ("k8s.io/x", "Kubernetes"),
        ("eks.amazonaws.com/capacityType", "AWS"),
        ("aws.amazon.com/neuron", "AWS"),
        ("karpenter.k8s.aws/x", "AWS"),
        ("cloud.google.com/gke-spot", "GKE"),
        ("google.com/tpu", "GKE"),
        ("nvidia.com/gpu", "NVIDIA"),
    ],
)
def test_reserved_prefixes_are_refused_with_the_reason(key, owner):
    problem = syntax.reserved_key(key)
    assert problem and owner in problem


def test_kubernetes_label_values():
    for value in ["", "a", "a.b-c_D", "x" * 63]:
        assert syntax.label_value(value) is None, value
    for value in ["-a", "a-", "a b", "x" * 64, "a/b", "a\n"]:
        assert syntax.label_value(value), value


def test_gcp_labels_follow_gcp_label_syntax():
    assert syntax.gcp_label("cost-center", "ml_team-1") == (None, None)
    assert syntax.gcp_label("Team", "ml")[0]  # uppercase
    assert syntax.gcp_label("1team", "ml")[0]  # starts with a digit
    assert syntax.gcp_label("team.name", "ml")[0]  # AWS-style punctuation
    assert syntax.gcp_label("x" * 64, "ml")[0]
    assert syntax.gcp_label("goog-x", "ml")[0]
    assert syntax.gcp_label("team", "ML")[1]
    assert syntax.gcp_label("team", "x" * 64)[1]
    assert "'team-name'" in syntax.gcp_label("Team Name", "x")[0]  # suggests the fix


def test_aws_tags_follow_aws_tag_rules():
    assert syntax.aws_tag("Cost Center", "ML/Team=1+2@x") == (None, None)
    assert syntax.aws_tag("aws:created", "x")[0]
    assert syntax.aws_tag("x" * 129, "x")[0]
    assert syntax.aws_tag("team", "x" * 257)[1]
    assert syntax.aws_tag("team", "a;b")[1]
    assert syntax.aws_tag("team", "ml ")[1]


GCP = """\
project: acme
cloud: gcp
region: us-central1
gcp_project: acme-ml
tags: TAGS
cluster:
  node_pools: [{name: cpu, instance_type: n2-standard-4}]
"""


def test_gcp_tags_with_aws_style_keys_fail_at_validate_not_at_apply():
    """Issue 17 item 6: GCP labels are lowercase letters, digits, '_' and '-'."""
    loads(GCP.replace("TAGS", "{team: ml, cost-center: '1234'}"))
    with pytest.raises(SpecError) as info:
        loads(GCP.replace("TAGS", "{CostCenter: '1234', 'app.kubernetes.io/name': x, env: Prod}"))
    found = "\n".join(info.value.problems)
    assert "mlkit.yaml:5:8: tags.CostCenter: 'CostCenter' is not a GCP label key" in found
    assert "tags.app.kubernetes.io/name: 'app.kubernetes.io/name' is not a GCP label key" in found
    assert "tags.env: 'Prod' is not a GCP label value" in found


def test_tags_that_mlkit_sets_itself_are_refused():
    with pytest.raises(SpecError) as info:
        loads(GCP.replace("TAGS", "{managed-by: me}"))
    assert "mlkit sets the label 'managed-by' on every resource itself" in info.value.problems[0]


def test_control_characters_are_named():
    assert "a newline" in syntax.control_char("a\nb")
    assert "U+200B" in syntax.control_char("a\u200bb")
    assert "U+202E" in syntax.control_char("\u202eabc")
    assert syntax.control_char("café ünïcode") is None


def test_hcl_string_escapes_everything_that_could_leave_the_string():
    assert hcl_string("plain-name") == '"plain-name"'
    assert hcl_string('a"b\\c\nd\re\tf') == '"a\\"b\\\\c\\nd\\re\\tf"'
    assert hcl_string("${x}%{if y}") == '"$${x}%%{if y}"'
    assert hcl_string("\x00\x1b") == '"\\u0000\\u001B"'
