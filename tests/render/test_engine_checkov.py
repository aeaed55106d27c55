"""checkov over the manifests of engine APIs on every accelerator family: no failed check, and only the
skips the predictor manifests already justify (tests/terraform/test_checkov.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.render.test_k8s import ENGINE_AWS_SPEC, ENGINE_GCP_SPEC
from tests.terraform.test_checkov import ALLOWED_SKIPS


def test_engine_manifests_pass_checkov(tmp_path: Path):
    checkov = os.environ.get("MLKIT_CHECKOV")
    if not checkov or not os.access(checkov, os.X_OK):
        pytest.skip("MLKIT_CHECKOV does not name a checkov binary (scripts/setup.sh installs one in .venv-checkov)")
    for cloud, text in (("aws", ENGINE_AWS_SPEC), ("gcp", ENGINE_GCP_SPEC)):
        for rel, body in render(loads(text)).items():
            if rel.startswith("infra/k8s/"):
                (tmp_path / cloud / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / cloud / rel).write_text(body)
    run = subprocess.run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=600
    )
    report = json.loads(run.stdout)
    results = (report[0] if isinstance(report, list) else report)["results"]
    assert results["failed_checks"] == [], [(c["check_id"], c["file_path"]) for c in results["failed_checks"]]
    assert len(results["passed_checks"]) > 300
    assert {c["check_id"] for c in results["skipped_checks"]} <= ALLOWED_SKIPS
