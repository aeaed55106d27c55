"""Why a job's work waits (cli/cluster/jobstate.py), from the Job and pod objects as a cluster reports them."""

from __future__ import annotations

from mlkit.cluster.jobstate import job_state, pending_reason

JOB = {"metadata": {"name": "reviews-1", "labels": {"mlkit.dev/api": "reviews"}}, "spec": {}, "status": {"active": 2}}


def pod(name: str, status: dict) -> dict:
    return {"metadata": {"name": name}, "status": status}


def test_kueue_suspension_is_named_with_its_queue():
    suspended = {**JOB, "metadata": {"name": "j", "labels": {"kueue.x-k8s.io/queue-name": "team-a"}}, "spec": {"suspend": True}}
    assert pending_reason(suspended, []) == "suspended: waiting for Kueue to admit it from LocalQueue team-a"
    assert pending_reason({**JOB, "spec": {"suspend": True}}, []) == "suspended (spec.suspend is true)"


def test_the_first_waiting_pod_says_why_and_running_pods_say_nothing():
    running = pod("a-0", {"phase": "Running"})
    assert pending_reason(JOB, [running]) is None
    pulling = pod("b-1", {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                          "containerStatuses": [{"name": "worker", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]})
    assert pending_reason(JOB, [running, pulling]) == "pod b-1: container worker ImagePullBackOff: not found"
    fetching = pod("c-2", {"phase": "Pending", "initContainerStatuses": [{"name": "fetch-model", "state": {"waiting": {"reason": "PodInitializing"}}}]})
    assert pending_reason(JOB, [fetching]) == "pod c-2: container fetch-model PodInitializing"
    unschedulable = pod("a-1", {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                                   "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu." + "x" * 400}]})
    reason = pending_reason(JOB, [pulling, unschedulable])
    assert reason is not None and reason.startswith("pod a-1 cannot be scheduled yet: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert "..." in reason and len(reason) < 420


def test_the_jobs_state_reads_its_conditions():
    assert job_state(JOB) == "running"
    assert job_state({**JOB, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "failed"
    assert job_state({**JOB, "status": {"conditions": [{"type": "Complete", "status": "False"}]}}) == "running"
    assert job_state({"metadata": {"name": "x", "deletionTimestamp": "2026-12-06T00:00:00Z"}}) == "cancelled"
