"""Hostile and careless specs through the real CLI: `mlkit validate` and `mlkit render` refuse each
with exit 1 and one line naming file:line:col, the field and the fix; no traceback, nothing written in
the project, nothing touched beside it (the sentinel tree)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import hcl2
import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.conftest import assert_one_line_error, mlkit, tree_snapshot

# The exploit of issue 12: a quote and newlines in state.bucket closed the string and the block and
# added a resource whose local-exec provisioner runs a command on every plan.
EXPLOIT = ('x"\n  }\n}\nresource "terraform_data" "pwn" {\n  provisioner "local-exec" { command = "touch /tmp/pwned" }\n'
           '}\nterraform {\n  backend "s3" {\n    bucket = "y')


def _yaml_str(value: str) -> str:
    """A double-quoted YAML scalar holding `value` exactly."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


STATE = "state: {backend: local}"
POOL = "- {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 5}"
MODEL = "model: model/ "
PREDICTOR = "predictor: predictor.py:Predictor "
CONFIG = "config: {threshold: 0.5}"


def _billion_laughs(text: str) -> str:
    lines = ["      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 6)]
    return _sub(CONFIG, "config:\n" + "\n".join(lines))(text)


# id, edit of the sentiment example's mlkit.yaml, pattern the one error line must match.
CASES = [
    (
        "hcl-injection-bucket",
        _sub(STATE, f"state: {{backend: s3, bucket: {_yaml_str(EXPLOIT)}}}"),
        r"mlkit\.yaml:9:\d+: state\.bucket: .*U\+000A \(a newline\)",
    ),
    (
        "hcl-quote-one-line",
        _sub(STATE, """state: {backend: s3, bucket: 'x" key = "y'}"""),
        r"mlkit\.yaml:9:\d+: state\.bucket: 'x\" key = \"y' is not an S3 bucket name",
    ),
    (
        "hcl-interpolation-prefix",
        _sub(STATE, "state: {backend: s3, bucket: acme-state, key_prefix: '${file(\"/etc/passwd\")}'}"),
        r"mlkit\.yaml:9:\d+: state\.key_prefix: .* is not a state key prefix",
    ),
    ("state-region-newline", _sub(STATE, 'state: {backend: s3, bucket: acme-state, region: "us-east-1\\n"}'), r"mlkit\.yaml:9:\d+: state\.region: .*a newline"),
    (
        "state-region-shape",
        _sub(STATE, "state: {backend: s3, bucket: acme-state, region: 'us-east-1\" #'}"),
        r"mlkit\.yaml:9:\d+: state\.region: .* is not an AWS region",
    ),
    ("bucket-ip-form", _sub(STATE, "state: {backend: s3, bucket: 192.168.5.4}"), r"state\.bucket: '192\.168\.5\.4' is formatted as an IP address"),
    ("bucket-double-dot", _sub(STATE, "state: {backend: s3, bucket: acme..state}"), r"state\.bucket: 'acme\.\.state' has two dots in a row"),
    ("region-trailing-newline", _sub("region: us-west-2", 'region: "us-west-2\\n"'), r"mlkit\.yaml:6:9: region: .*a newline"),
    ("region-look-alike", _sub("region: us-west-2", "region: us-wеst-2"), r"mlkit\.yaml:6:9: region: 'us-wеst-2' is not an AWS region"),
    (
        "instance-type-injection",
        _sub("instance_type: m6i.large", "instance_type: 'm6i.large\" x'"),
        r"mlkit\.yaml:16:\d+: cluster\.node_pools\[0\]\.instance_type: .*is not an EC2 instance type",
    ),
    (
        "label-mlkit-reserved",
        _sub(POOL, "- {name: cpu, instance_type: m6i.large, labels: {mlkit.dev/pool: gpu}}"),
        r"node_pools\[0\]\.labels\.mlkit\.dev/pool: .*mlkit's own.*never schedule",
    ),
    (
        "label-kubernetes-reserved",
        _sub(POOL, "- {name: cpu, instance_type: m6i.large, labels: {node-role.kubernetes.io/worker: ''}}"),
        r"labels\.node-role\.kubernetes\.io/worker: .*reserved for Kubernetes",
    ),
    ("label-bad-key", _sub(POOL, "- {name: cpu, instance_type: m6i.large, labels: {'-team': a}}"), r"labels\.-team: '-team' is not a Kubernetes key"),
    ("label-bad-value", _sub(POOL, "- {name: cpu, instance_type: m6i.large, labels: {team: 'a b'}}"), r"labels\.team: 'a b' is not a Kubernetes label value"),
    (
        "taint-vendor-key",
        _sub(POOL, "- {name: cpu, instance_type: m6i.large, taints: [{key: nvidia.com/gpu, value: 'true'}]}"),
        r"taints\[0\]\.key: 'nvidia\.com/gpu' uses the prefix nvidia\.com/",
    ),
    ("taint-bad-key", _sub(POOL, "- {name: cpu, instance_type: m6i.large, taints: [{key: 'a/b/c'}]}"), r"taints\[0\]\.key: 'a/b/c' has an invalid prefix"),
    ("aws-tag-reserved", _sub(STATE, STATE + "\ntags: {'aws:owner': me}"), r"mlkit\.yaml:10:\d+: tags\.aws:owner: .*starts with 'aws:'"),
    ("tag-key-trailing-space", _sub(STATE, STATE + "\ntags: {'team ': ml}"), r"mlkit\.yaml:10:\d+: tags\.team : the key 'team ' has spaces around it"),
    ("config-billion-laughs", _billion_laughs, r"mlkit\.yaml:3[23]:\d+: YAML syntax: aliases expand the document past"),
    ("recursive-alias", _sub(CONFIG, "config: &c {self: *c}"), r"mlkit\.yaml:27:\d+: YAML syntax: the alias \*c sits inside its own anchor"),
    ("deep-nesting", _sub(CONFIG, "config: " + "[" * 200 + "]" * 200), r"mlkit\.yaml:27:\d+: YAML syntax: nested more than 64 levels deep"),
    ("config-too-big", _sub(CONFIG, "config: {blob: '" + "x" * 600_000 + "'}"), r"mlkit\.yaml:27:\d+: apis\[0\]\.config: is \d+ bytes as JSON; at most 524288"),
    ("config-date", _sub(CONFIG, "config: {since: 2024-01-01}"), r"apis\[0\]\.config: since is a YAML date"),
    ("nul-in-name", _sub("name: sentiment", 'name: "senti\\0ment"'), r"mlkit\.yaml:24:\d+: apis\[0\]\.name: .*U\+0000 \(NUL\)"),
    ("bidi-override", _sub("name: sentiment", 'name: "sentiment\\u202e"'), r"apis\[0\]\.name: .*U\+202E"),
    ("very-long-string", _sub("region: us-west-2", "region: " + "a" * 5000), r"mlkit\.yaml:6:9: region: the value is 5000 characters long; at most 1024"),
    ("huge-integer", _sub("max_nodes: 5", "max_nodes: 1" + "0" * 40), r"node_pools\[0\]\.max_nodes: 1(0)+ is too large \(valid: at most 1000\)"),
    # Python's int() refuses more than 4300 digits: a traceback once, from the YAML loader itself.
    ("int-5000-digits", _sub("max_nodes: 5", "max_nodes: " + "9" * 5000), r"mlkit\.yaml:16:\d+: YAML value: a number of 5000 digits; numbers here"),
    ("int-5000-digits-config", _sub(CONFIG, "config: {seed: -" + "1" * 5000 + "}"), r"mlkit\.yaml:27:\d+: YAML value: a number of 5000 digits"),
    # Quantities matching the pattern but no request at all, or past every node (1e999999 bytes).
    ("memory-exponent", _sub("memory: 512Mi", "memory: 1e999999"), r"compute\.memory: .1e999999. is out of range for a memory request \(valid: 1Mi to 64Ti\)"),
    ("memory-zero", _sub("memory: 512Mi", 'memory: "0"'), r"apis\[0\]\.compute\.memory: '0' is out of range for a memory request"),
    ("memory-petabytes", _sub("memory: 512Mi", "memory: 2Ei"), r"apis\[0\]\.compute\.memory: '2Ei' is out of range"),
    ("cpu-zero", _sub("cpu: 500m", 'cpu: "0"'), r"apis\[0\]\.compute\.cpu: '0' is out of range for a CPU request \(valid: 1m to 1024\)"),
    ("cpu-huge", _sub("cpu: 500m", "cpu: 1e9"), r"apis\[0\]\.compute\.cpu: '1e9' is out of range for a CPU request"),
    ("duplicate-pool", _sub(POOL, POOL + "\n    " + POOL), r"node_pools\[1\]\.name: duplicate pool name 'cpu'"),
    ("not-a-mapping", lambda text: "- project: x\n", r"mlkit\.yaml:1:1: the spec must be a mapping"),
    ("namespace-kube-system", _sub("cloud: aws", "cloud: aws\nnamespace: kube-system"), r"namespace: 'kube-system' belongs to Kubernetes itself"),
    (
        "public-cidr-host-bits",
        _sub('kubernetes_version: "1.35"', 'kubernetes_version: "1.35"\n  public_access_cidrs: [10.0.0.1/16]'),
        r"cluster\.public_access_cidrs\[0\]: '10\.0\.0\.1/16' is not an IPv4 CIDR block",
    ),
    (
        "model-ftp",
        _sub(MODEL, "model: ftp://example.com/m "),
        r"mlkit\.yaml:26:\d+: apis\[0\]\.model: ftp:// is not a model location \(valid on aws: s3://bucket/prefix",
    ),
    ("model-empty", _sub(MODEL, 'model: "" '), r"apis\[0\]\.model: is empty \(valid on aws: s3://bucket/prefix"),
    ("model-blank", _sub(MODEL, 'model: "   " '), r"apis\[0\]\.model: is empty"),
    ("model-gs-on-aws", _sub(MODEL, "model: gs://acme-models/m "), r"apis\[0\]\.model: gs:// is a GCP bucket, which a cluster on aws cannot read"),
    ("model-bad-bucket", _sub(MODEL, "model: s3://Acme_Models/m "), r"apis\[0\]\.model: bucket 'Acme_Models' is not an S3 bucket name"),
    ("model-missing-folder", _sub(MODEL, "model: model-v9/ "), r"apis\[0\]\.model: no model folder 'model-v9/'"),
    ("model-dotdot", _sub(MODEL, "model: ../outside/secrets "), r"apis\[0\]\.model: '\.\./outside/secrets' climbs out with '\.\.'"),
    ("model-absolute", _sub(MODEL, "model: /etc "), r"apis\[0\]\.model: '/etc' is an absolute path"),
    ("predictor-missing", _sub(PREDICTOR, "predictor: missing.py:Predictor "), r"mlkit\.yaml:25:\d+: apis\[0\]\.predictor: no predictor file 'missing\.py'"),
    (
        "predictor-no-class",
        _sub(PREDICTOR, "predictor: predictor.py:Predicter "),
        r"apis\[0\]\.predictor: predictor\.py defines no 'Predicter' at its top level \(classes there: Predictor\)",
    ),
    ("predictor-dotdot", _sub(PREDICTOR, "predictor: ../outside/x.py:P "), r"apis\[0\]\.predictor: '\.\./outside/x\.py' climbs out"),
    ("predictor-absolute", _sub(PREDICTOR, "predictor: /tmp/x.py:P "), r"apis\[0\]\.predictor: '/tmp/x\.py' is an absolute path"),
    (
        "canary-model-ftp",
        _sub(CONFIG, CONFIG + "\n    expose: public\n    canary: {weight: 10, model: 'ftp://x/y'}"),
        r"apis\[0\]\.canary\.model: ftp:// is not a model location",
    ),
]


@pytest.fixture
def proj(project, sentinel):
    return project("sentiment")


def _refused(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert_one_line_error(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[:2000]
    assert re.search(pattern, lines[0]), lines[0][:2000]


def _refused_by_validate_and_render(proj: Path, sentinel, pattern: str, *args: str) -> None:
    """Both commands refuse with the one line; the project and the tree beside it are as they were."""
    before = tree_snapshot(proj)
    for command in (["validate"], ["render", "--allow-dirty"]):
        _refused(mlkit(*command, *args, cwd=proj, timeout=60), pattern)
    assert tree_snapshot(proj) == before
    assert not (proj / "infra").exists()
    sentinel.assert_untouched()


@pytest.mark.parametrize("edit, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_and_render_refuse_with_one_line(proj: Path, sentinel, edit, pattern):
    spec = proj / "mlkit.yaml"
    spec.write_text(edit(spec.read_text()))
    _refused_by_validate_and_render(proj, sentinel, pattern)


def test_billion_laughs_fails_fast(proj: Path):
    spec = proj / "mlkit.yaml"
    spec.write_text(_billion_laughs(spec.read_text()))
    assert spec.stat().st_size < 3000
    started = time.monotonic()
    result = mlkit("validate", cwd=proj, timeout=60)
    took = time.monotonic() - started
    _refused(result, r"mlkit\.yaml:\d+:\d+: YAML syntax: aliases expand")
    assert took < 5, took  # CLI start included; the check itself is milliseconds


def _link_predictor_outside(proj: Path, sentinel) -> str:
    (proj / "predictor.py").unlink()
    (proj / "predictor.py").symlink_to(sentinel.root / "notes.txt")
    return r"apis\[0\]\.predictor: 'predictor\.py' leads outside the project"


def _link_model_outside(proj: Path, sentinel) -> str:
    shutil.rmtree(proj / "model")
    (proj / "model").symlink_to(sentinel.root / "secrets", target_is_directory=True)
    return r"apis\[0\]\.model: 'model/' leads outside the project"


def _predictor_syntax_error(proj: Path, sentinel) -> str:
    (proj / "predictor.py").write_text("class Predictor:\n    def predict(self, x)\n        return x\n")
    return r"apis\[0\]\.predictor: predictor\.py:2:\d+: Python syntax error"


def _predictor_is_a_folder(proj: Path, sentinel) -> str:
    (proj / "predictor.py").unlink()
    (proj / "predictor.py").mkdir()
    return r"apis\[0\]\.predictor: 'predictor\.py' is not a regular file"


def _model_is_a_file(proj: Path, sentinel) -> str:
    shutil.rmtree(proj / "model")
    (proj / "model").write_text("weights")
    return r"apis\[0\]\.model: 'model/' is not a folder|no model folder"


@pytest.mark.parametrize("arrange", [_link_predictor_outside, _link_model_outside, _predictor_syntax_error, _predictor_is_a_folder, _model_is_a_file])
def test_files_the_spec_names_are_checked_without_running_them(proj: Path, sentinel, arrange):
    _refused_by_validate_and_render(proj, sentinel, arrange(proj, sentinel))


def test_the_predictor_is_parsed_not_imported(proj: Path, sentinel):
    marker = sentinel.root.parent / "imported"
    (proj / "predictor.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Predictor:\n    pass\n")
    result = mlkit("validate", cwd=proj)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def _spec_link_outside(proj: Path, sentinel):
    (proj / "mlkit.yaml").unlink()
    (proj / "mlkit.yaml").symlink_to(sentinel.root / "notes.txt")
    return [], r"mlkit\.yaml: is a symbolic link; the project is the folder of its spec"


def _spec_is_a_folder(proj: Path, sentinel):
    (proj / "spec.yaml").mkdir()
    return ["-f", "spec.yaml"], r"spec\.yaml: is a directory"


def _spec_is_binary(proj: Path, sentinel):
    (proj / "mlkit.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(256))
    return [], r"mlkit\.yaml: is a binary file"


def _spec_is_huge(proj: Path, sentinel):
    (proj / "mlkit.yaml").write_text("# " + "x" * (3 * 1024 * 1024) + "\n")
    return [], r"mlkit\.yaml: is \d+ bytes; a spec is at most 2 MiB"


def _spec_is_latin1(proj: Path, sentinel):
    (proj / "mlkit.yaml").write_bytes("project: caf\xe9\n".encode("latin-1"))
    return [], r"mlkit\.yaml: is not UTF-8 text"


@pytest.mark.parametrize("arrange", [_spec_link_outside, _spec_is_a_folder, _spec_is_binary, _spec_is_huge, _spec_is_latin1])
def test_a_spec_file_that_is_not_a_regular_text_file_is_refused(proj: Path, sentinel, arrange):
    args, pattern = arrange(proj, sentinel)
    _refused_by_validate_and_render(proj, sentinel, pattern, *args)


def test_backend_values_are_escaped_even_past_validation():
    """Defence in depth: a hostile value that got past the checks stays one inert HCL string."""
    spec = loads(
        "project: acme\ncloud: aws\nregion: us-west-2\nstate: {backend: s3, bucket: acme-state}\n"
        "cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}\n"
    )
    hostile = EXPLOIT + "${path.cwd}%{if true}x%{endif}\\"
    spec.state.bucket = hostile  # models do not validate on assignment: this is what a missed check would pass on
    text = render(spec)["infra/terraform/cluster/backend.tf"]
    parsed = {k: v for k, v in hcl2.loads(text).items() if not k.startswith("__")}
    assert list(parsed) == ["terraform"], parsed  # no resource block got in
    bucket_line = next(line for line in text.splitlines() if line.lstrip().startswith("bucket"))
    assert "terraform_data" in bucket_line and "$${path.cwd}" in bucket_line and "%%{if true}" in bucket_line
    if shutil.which("terraform"):
        fmt = subprocess.run(["terraform", "fmt", "-"], input=text, capture_output=True, text=True, timeout=60)
        assert fmt.returncode == 0, fmt.stderr
