"""checkov on every example's rendered cluster stack, add-ons stack (AWS and GCP) and manifests: no failed check,
and every skip is on the list below and justified inline (`#checkov:skip=ID:reason` in a module or template, a
`checkov.io/skipN` annotation in a manifest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mlkit.spec.loader import load
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, cloud_of, mlkit

ALLOWED_SKIPS = {
    "CKV_AWS_18",  # S3 access logging: needs a log bucket the platform team owns
    "CKV_AWS_144",  # S3 cross-region replication: cost; models can be re-uploaded
    "CKV2_AWS_62",  # S3 event notifications: nothing consumes them
    "CKV_AWS_158",  # flow-log group KMS: no secrets in flow logs
    "CKV_AWS_109", "CKV_AWS_111", "CKV_AWS_356",  # key policy Resource "*" means the key itself
    "CKV_AWS_37",  # all control-plane log types: two are verbose; configurable
    "CKV_AWS_38", "CKV_AWS_39",  # public API endpoint by default; configurable
    "CKV_AWS_394",  # AZ pinning: only the first az_count zones by name are used
    "CKV_GCP_21",  # cluster labels: set through merge(), which checkov cannot evaluate
    "CKV_GCP_12",  # legacy network_policy: Dataplane V2 enforces NetworkPolicy itself
    "CKV_GCP_62",  # GCS access logs: need a log bucket; Cloud Audit Logs record data access
    "CKV_GCP_65",  # Google Groups for RBAC: needs a Workspace domain
    "CKV_GCP_66",  # Binary Authorization: needs signed images and an attestor
    "CKV_GCP_84",  # Artifact Registry CMEK: needs a key ring the platform team owns
    "CKV_GCP_83",  # Pub/Sub topic CMEK (async APIs' queues): needs a key ring the platform team owns
    "CKV_K8S_11",  # CPU limits: throttling stalls inference; the request reserves the cores
    "CKV_K8S_15", "CKV_K8S_43",  # pull policy Always / digests: tags are content hashes, never reused
}
# Where each part lives, its checkov framework, and the fewest checks a healthy run passes.
PARTS = {
    "cluster": ("infra/terraform/cluster", "terraform", 50),
    "addons": ("infra/terraform/addons", "terraform", 20),
    "manifests": ("infra/k8s", "kubernetes", 80),
}

# A bucket without uniform access or versioning: checkov fails it (CKV_GCP_29, CKV_GCP_78, ...).
CANARY = 'resource "google_storage_bucket" "canary" {\n  name     = "canary"\n  location = "US"\n}\n'


@pytest.fixture(scope="session")
def checkov() -> str:
    path = os.environ.get("MLKIT_CHECKOV")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("MLKIT_CHECKOV does not name a checkov binary (scripts/setup.sh installs one in .venv-checkov)")
    return path


@pytest.fixture(scope="module")
def reports(checkov, tmp_path_factory) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """Every example rendered once and checkov run once over all their parts: each part's passed, failed and
    skipped checks, by (example, part). One run instead of one per part: checkov spends 4 to 8 CPU-seconds
    starting (loading its checks) each time, and 21 runs made it the suite's largest single cost after the
    moto applies; the checks and the files are the same."""
    root = tmp_path_factory.mktemp("checkov")
    tree = root / "parts"
    for name in EXAMPLE_NAMES:
        assert mlkit("init", name, "--example", name, cwd=root).returncode == 0
        assert mlkit("render", cwd=root / name).returncode == 0, name
        for part, (where, _, _) in PARTS.items():
            shutil.copytree(root / name / where, tree / name / part)
        if cloud_of(name) == "gcp":
            # Helm releases and data sources only: checkov has no Terraform check for either, so a clean
            # run there proves nothing by itself. A canary file beside them, a bucket checkov does check,
            # shows that checkov read the folder; every check it ran there must then be the canary's.
            (tree / name / "addons" / "zz_canary.tf").write_text(CANARY)
    frameworks = sorted({framework for _, framework, _ in PARTS.values()})
    out = subprocess.run(
        [checkov, "-d", str(tree), "--framework", *frameworks, "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=900,
    )
    runs = json.loads(out.stdout)
    runs = runs if isinstance(runs, list) else [runs]
    assert sorted(run["check_type"] for run in runs) == frameworks, out.stderr[-2000:]
    assert all(run["summary"]["parsing_errors"] == 0 for run in runs), [run["summary"] for run in runs]
    sliced: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for run in runs:
        for kind in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in run["results"][kind]:
                name, part, _ = check["file_path"].strip("/").split("/", 2)  # /<example>/<part>/<file>
                check["framework"] = run["check_type"]
                sliced.setdefault((name, part), {}).setdefault(kind, []).append(check)
    return sliced


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_no_failed_checks_and_only_justified_skips(reports, name, part):
    _, framework, fewest = PARTS[part]
    results = {kind: [] for kind in ("passed_checks", "failed_checks", "skipped_checks")} | reports.get((name, part), {})
    # Each part was read as its own framework: Terraform checks never on a manifest, nor the reverse.
    assert {c["framework"] for kind in results.values() for c in kind} <= {framework}
    if part == "addons" and cloud_of(name) == "gcp":
        checked = {c["file_path"] for kind in results.values() for c in kind}
        assert checked == {f"/{name}/addons/zz_canary.tf"} and results["failed_checks"], checked
        assert {r["resource"] for r in results["failed_checks"]} == {"google_storage_bucket.canary"}
        return
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in results["failed_checks"]]
    assert failed == [], failed
    if part == "manifests" and all(api.kind != "realtime" for api in load(EXAMPLES / name / "mlkit.yaml").apis):
        fewest = 0  # batch and task APIs stand as a ServiceAccount and a ConfigMap only: few checks apply
    assert len(results["passed_checks"]) > fewest
    skipped = results["skipped_checks"]
    assert {c["check_id"] for c in skipped} <= ALLOWED_SKIPS
    assert all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped)
