"""checkov on the GCP cluster stack with batch APIs (no example has one on GCP): their own service accounts and
prefix-conditioned bindings pass with no new skip. The AWS grant is checked with the batch example by test_checkov."""

from __future__ import annotations

import json
import subprocess

from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.render.test_job_access import GCP_SPEC
from tests.terraform.test_checkov import ALLOWED_SKIPS, checkov  # noqa: F401  (fixture: the checkov binary)


def test_the_gcp_batch_grant_passes_checkov(checkov, tmp_path):  # noqa: F811
    for rel, text in render(loads(GCP_SPEC)).items():
        if rel.startswith("infra/terraform/cluster/"):
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    stack = tmp_path / "infra/terraform/cluster"
    assert "google_storage_bucket_iam_member\" \"batch_output\"" in (stack / "main.tf").read_text()
    out = subprocess.run([checkov, "-d", str(stack), "--framework", "terraform", "--skip-download", "-o", "json"],
                         capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    results = report["results"]
    assert [(c["check_id"], c["resource"]) for c in results["failed_checks"]] == []
    checked = sorted({c["resource"] for c in results["passed_checks"] if "batch" in c["resource"]})
    # checkov's GCS IAM checks (no public member) ran on each binding, and passed.
    assert checked == [f"google_storage_bucket_iam_member.{r}[\"{api}\"]" for r in ("batch_model_read", "batch_output") for api in ("embed", "score")]
    assert {c["check_id"] for c in results["skipped_checks"]} <= ALLOWED_SKIPS
