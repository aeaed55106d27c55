"""A pod's cold start from its timestamps: the phases a kubelet records, and nothing made up where a
record is missing or malformed (a pod's status is written by others; it is data)."""

from __future__ import annotations

import pytest

from mlkit.cluster.coldstart import cold_start, newest, summary


def test_an_image_already_on_the_node_counts_as_pulled_and_clock_skew_is_not_negative():
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-29T12:00:00Z"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-29T11:59:59Z"}]},
    }
    events = [{
        "reason": "Pulled", "involvedObject": {"name": "p", "fieldPath": "spec.containers{predictor}"},
        "message": 'Container image "x" already present on machine', "eventTime": "2026-11-29T12:00:02.512000Z", "lastTimestamp": None,
    }]
    start = cold_start(pod, events)
    assert (start["scheduled_s"], start["image_pulled_s"]) == (0.0, 2.512)
    assert summary(start) == "not ready yet (scheduled 0.0s, image pulled 2.5s)"


@pytest.mark.parametrize("status", [None, {"conditions": "Ready"}, {"conditions": [7, {"type": "Ready", "status": "True", "lastTransitionTime": 5}]},
                                    {"containerStatuses": [{"name": "predictor", "state": {"running": {"startedAt": "yesterday"}}}]}])
def test_malformed_status_gives_no_times(status):
    start = cold_start({"metadata": {"name": "p", "creationTimestamp": "2026-11-29T12:00:00Z"}, "status": status}, [{"reason": "Pulled"}, "x"])
    assert [start[k] for k in ("scheduled_s", "initialized_s", "image_pulled_s", "started_s", "ready_s")] == [None] * 5
    assert summary(start) == "not ready yet"


def test_the_newest_pod_is_the_last_cold_start_and_undated_pods_are_skipped():
    pods = [
        {"metadata": {"name": "a", "creationTimestamp": "2026-11-29T12:00:00Z"}},
        {"metadata": {"name": "b", "creationTimestamp": "2026-11-29T12:30:00+00:00"}},
        {"metadata": {"name": "c", "creationTimestamp": "not a time"}},
        {"metadata": {"name": "d"}},
    ]
    assert newest(pods)["metadata"]["name"] == "b"
    assert newest([{"metadata": {"name": "d"}}]) is None
