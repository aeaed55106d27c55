"""`monitoring:` on an API: what the spec accepts, and the one line it answers for what it does not."""

from __future__ import annotations

import pytest

from mlkit.errors import SpecError
from mlkit.spec.loader import loads

SPEC = """project: demo
cloud: aws
region: us-west-2
cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}
apis:
  - name: a
    predictor: p.py:P
    monitoring: MONITORING
"""


def test_accepted_and_carried_as_runtime_settings():
    api = loads(SPEC.replace("MONITORING", "{key: score, type: regression, buckets: [-1, 0, 0.5, 1e3]}")).apis[0]
    assert api.monitoring is not None
    assert api.monitoring.runtime_settings() == {"monitor_key": "score", "monitor_type": "regression", "monitor_buckets": "-1.0,0.0,0.5,1000.0"}
    api = loads(SPEC.replace("MONITORING", "{key: label, type: classification}")).apis[0]
    assert api.monitoring is not None and api.monitoring.runtime_settings() == {"monitor_key": "label", "monitor_type": "classification"}


@pytest.mark.parametrize(
    ("monitoring", "fragment"),
    [
        ("{key: label}", "apis[0].monitoring.type"),
        ("{key: label, type: ranking}", "apis[0].monitoring.type"),
        ('{key: "a b", type: classification}', "apis[0].monitoring.key"),
        ('{key: "", type: classification}', "apis[0].monitoring.key"),
        ("{key: label, type: classification, buckets: [1]}", "buckets apply to `type: regression` only"),
        ("{key: v, type: regression, buckets: [1, 0]}", "increasing order"),
        ("{key: v, type: regression, buckets: [0, .nan]}", "buckets"),
        ("{key: v, type: regression, buckets: []}", "buckets"),
        ("{key: v, type: regression, extra: 1}", "extra"),
    ],
)
def test_refused_in_one_line(monitoring, fragment):
    with pytest.raises(SpecError) as err:
        loads(SPEC.replace("MONITORING", monitoring))
    assert len(err.value.problems) == 1 and fragment in err.value.problems[0], err.value.problems
    assert "mlkit.yaml:8:" in err.value.problems[0]
