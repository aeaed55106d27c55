"""Workload kinds in the spec: `kind: async`, its queue fields and the rules that keep it honest."""

from __future__ import annotations

import pytest

from mlkit.errors import UserError
from mlkit.render.facts import Facts
from mlkit.render.k8s import render
from mlkit.spec.loader import loads
from tests.spec.refusals import only

AWS = """\
project: docs-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
apis:
  - name: ocr
    predictor: predictor.py:Predictor
    kind: async
"""

GCP = """\
project: docs-demo
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
  node_pools:
    - {name: cpu, instance_type: n2-standard-4}
apis:
  - name: ocr
    predictor: predictor.py:Predictor
    kind: async
"""


def test_kind_defaults_to_realtime_and_async_takes_queue_defaults():
    realtime = loads(AWS.replace("    kind: async\n", ""))
    assert realtime.apis[0].kind == "realtime" and realtime.apis[0].queue is None
    api = loads(AWS + "    queue: {max_attempts: 2, visibility_timeout_s: 60}\n    autoscaling: {min_replicas: 0, target_queued: 3}\n").apis[0]
    assert api.kind == "async"
    assert api.queue is not None and (api.queue.max_attempts, api.queue.visibility_timeout_s, api.queue.result_retention_days) == (2, 60, 7)
    assert (api.autoscaling.min_replicas, api.autoscaling.target_queued) == (0, 3)


def test_an_unknown_kind_names_the_choices():
    found = only(AWS.replace("kind: async", "kind: streaming"))
    assert "apis[0].kind" in found and "realtime" in found and "async" in found


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ("    queue: {max_attempts: 3}\n", "apis[0].queue", "only for `kind: async`"),
        ("    autoscaling: {target_queued: 3}\n", "apis[0].autoscaling.target_queued", "only for `kind: async`"),
    ],
)
def test_queue_fields_on_a_realtime_api_are_refused(extra, where, says):
    found = only(AWS.replace("    kind: async\n", "") + extra)
    assert where in found and says in found


def test_an_engine_api_cannot_be_async():
    text = AWS.replace("predictor: predictor.py:Predictor", "engine: vllm\n    hf_model: org/model\n    compute: {gpu: 1, memory: 16Gi}")
    text = text.replace("instance_type: m6i.large", "instance_type: g5.xlarge")
    found = only(text)
    assert "apis[0].kind" in found and "remove engine or kind" in found


def test_an_async_api_has_no_canary():
    found = only(AWS + "    expose: public\n    canary: {weight: 10}\n")
    assert "apis[0].canary" in found and "no canary" in found


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("visibility_timeout_s", 601, "600"), ("max_attempts", 4, "5 to 100")],
)
def test_gcp_holds_async_to_pubsub_limits(field, value, says):
    found = only(GCP + f"    queue: {{{field}: {value}}}\n")
    assert f"apis[0].queue.{field}" in found and says in found
    loads(AWS + f"    queue: {{{field}: {value}}}\n")  # SQS takes it


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_attempts", 0), ("max_attempts", 101), ("visibility_timeout_s", 5), ("max_payload_bytes", 10), ("result_retention_days", 0), ("max_attempts", "3")],
)
def test_queue_fields_are_bounded(field, value):
    found = only(AWS + f"    queue: {{{field}: {value!r}}}\n".replace("'", '"'))
    assert f"apis[0].queue.{field}" in found


def test_both_clouds_render_async_apis_and_a_cloud_without_a_queue_stack_is_refused_in_one_line(monkeypatch):
    """AWS and GCP clusters render async APIs (tests/render/test_asyncapi.py, test_asyncapi_gcp.py); a cloud whose
    cluster stack makes no queues (`renders_async_queues` false) is refused in one line."""
    from mlkit.clouds.gcp import Gcp

    assert "infra/k8s/ocr/deployment.yaml" in render(loads(AWS), Facts())
    assert "infra/k8s/ocr/deployment.yaml" in render(loads(GCP), Facts())
    monkeypatch.setattr(Gcp, "renders_async_queues", False)
    with pytest.raises(UserError) as info:
        render(loads(GCP), Facts())
    message = info.value.message
    assert "\n" not in message and "apis[0].kind" in message and "mlkit serve" in message and "gcp clusters" in message
