"""Live progress from terraform's -json events: what a person sees on a terminal and in a CI log."""

from __future__ import annotations

import io
import json

from mlkit.terraform.progress import Progress

# Event shapes as terraform 1.x writes them with -json (machine-readable UI).
EVENTS = [
    {"type": "apply_start", "hook": {"resource": {"addr": "module.vpc.aws_vpc.this"}, "action": "create"}},
    {"type": "apply_progress", "hook": {"resource": {"addr": "module.vpc.aws_vpc.this"}, "action": "create", "elapsed_seconds": 10}},
    {"type": "apply_complete", "hook": {"resource": {"addr": "module.vpc.aws_vpc.this"}, "action": "create", "elapsed_seconds": 12}},
    {"type": "apply_start", "hook": {"resource": {"addr": "module.eks.aws_eks_cluster.this"}, "action": "create"}},
    {
        "type": "diagnostic",
        "@level": "warning",
        "diagnostic": {"severity": "warning", "summary": "Argument is deprecated", "detail": "use X", "address": "module.eks.aws_eks_cluster.this"},
    },
    {"type": "apply_errored", "hook": {"resource": {"addr": "module.eks.aws_eks_cluster.this"}, "action": "create"}},
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ci_log_gets_one_line_per_finished_resource():
    err = io.StringIO()
    progress = Progress(total=2, stream=err, out=io.StringIO())
    for event in EVENTS:
        progress(event)
    progress.close()
    lines = err.getvalue().splitlines()
    assert lines[0] == "[1/2] create module.vpc.aws_vpc.this (12s)"
    assert lines[1].startswith("[1/2] warning: Argument is deprecated (module.eks.aws_eks_cluster.this)")
    assert lines[-1] == "[1/2] FAILED module.eks.aws_eks_cluster.this"
    assert "\r" not in err.getvalue()


def test_terminal_gets_a_status_line_redrawn_in_place():
    err = Terminal()
    progress = Progress(total=2, stream=err, out=io.StringIO())
    progress(EVENTS[0])
    assert err.getvalue().endswith("[0/2] creating module.vpc.aws_vpc.this, 0s elapsed")
    progress(EVENTS[2])
    progress.close()
    assert "\r\x1b[2K[1/2] create module.vpc.aws_vpc.this (12s)\n" in err.getvalue()


def test_json_mode_passes_events_through_to_stdout_and_keeps_stderr_quiet():
    err, out = io.StringIO(), io.StringIO()
    progress = Progress(json_mode=True, stream=err, out=out)
    for event in EVENTS:
        progress(event)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == EVENTS
    assert err.getvalue() == ""
