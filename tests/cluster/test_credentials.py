"""Cluster credentials without aws, gcloud or kubectl: the EKS token, the kubeconfig entry, and
reading a kubeconfig context (token, CA, client certificate, exec plugin)."""

from __future__ import annotations

import base64
import json
import stat
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import yaml

from mlkit.cluster import credentials, kubeconfig
from mlkit.errors import ToolError, UserError
from tests.conftest import aws_env, mlkit


@pytest.fixture
def aws(moto, monkeypatch):
    for key, value in aws_env(moto).items():
        monkeypatch.setenv(key, value)
    return moto


def test_eks_token_is_a_presigned_sts_call_naming_the_cluster(aws):
    token, expires = credentials.eks_token("prod", "us-west-2")
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    url = urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "sts.us-west-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0] and query["X-Amz-Signature"]


def test_mlkit_token_prints_an_exec_credential(aws):
    out = mlkit("token", "--cloud", "aws", "--cluster", "prod", "--region", "us-west-2", cwd=".", env=aws_env(aws))
    assert out.returncode == 0, out.stderr
    cred = json.loads(out.stdout)
    assert cred["kind"] == "ExecCredential" and cred["status"]["token"].startswith("k8s-aws-v1.")
    bad = mlkit("token", "--cloud", "azure", "--cluster", "prod", cwd=".")
    assert bad.returncode == 1 and "valid: aws, gcp" in bad.stderr


def test_eks_endpoint_from_describe_cluster(aws):
    eks = boto3.client("eks", region_name="us-west-2")
    eks.create_cluster(name="prod", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []})
    endpoint = credentials.eks_endpoint("prod", "us-west-2")
    assert endpoint.server.startswith("https://") and base64.b64decode(endpoint.ca_data)
    with pytest.raises(UserError, match="no EKS cluster named absent in us-west-2"):
        credentials.eks_endpoint("absent", "us-west-2")


def test_merge_keeps_other_entries_and_never_overwrites_one(tmp_path):
    file = tmp_path / "config"
    theirs = {"apiVersion": "v1", "kind": "Config", "current-context": "work",
              "clusters": [{"name": "work", "cluster": {"server": "https://work"}}],
              "users": [{"name": "work", "user": {"token": "x"}}],
              "contexts": [{"name": "work", "context": {"cluster": "work", "user": "work"}}]}
    file.write_text(yaml.safe_dump(theirs))
    args = ["--cloud", "aws", "--cluster", "prod", "--region", "us-west-2"]
    assert kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", args, file) is True
    merged = yaml.safe_load(file.read_text())
    assert merged["current-context"] == "work"  # someone else's default stays their default
    assert [c["name"] for c in merged["contexts"]] == ["work", "mlkit-demo"]
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", args, file) is False
    with pytest.raises(UserError, match="already has a cluster named 'mlkit-demo' with other settings; mlkit does not overwrite it"):
        kubeconfig.merge_context("mlkit-demo", "https://other", "Q0E=", args, file)


def test_credentials_from_a_context_with_ca_and_an_exec_plugin(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text('import json\nprint(json.dumps({"kind": "ExecCredential", "status": {"token": "from-plugin"}}))\n')
    file = tmp_path / "config"
    file.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s", "certificate-authority-data": base64.b64encode(b"PEM").decode()}}],
        "users": [{"name": "u", "user": {"exec": {"command": sys.executable, "args": [str(plugin)]}}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }))
    creds = kubeconfig.credentials("ctx", file)
    assert creds.server == "https://k8s" and creds.token == "from-plugin"
    assert open(creds.ca_file, "rb").read() == b"PEM"


def test_closing_the_cluster_removes_the_pem_files_its_credentials_wrote(tmp_path):
    import certifi

    from mlkit.cluster.client import Cluster

    file = tmp_path / "config"
    file.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://k8s", "certificate-authority-data": base64.b64encode(open(certifi.where(), "rb").read()).decode()},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    creds = kubeconfig.credentials("ctx", file)
    ca = Path(creds.ca_file)
    assert ca.is_file() and stat.S_IMODE(ca.stat().st_mode) == 0o600  # a cluster's CA (or a client key) readable by its owner only
    Cluster(creds).close()
    assert not ca.exists()


def test_connect_to_an_eks_cluster_mlkit_made_uses_describe_and_a_fresh_token(aws):
    from mlkit.cluster.connect import credentials_for, token_args
    from mlkit.spec.loader import loads

    eks = boto3.client("eks", region_name="us-west-2")
    described = eks.create_cluster(name="made-demo", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []})["cluster"]
    spec = loads("project: made-demo\ncloud: aws\nregion: us-west-2\ncluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}\n")
    creds = credentials_for(spec)  # moto's CA is not a real certificate, so no TLS client is built here
    assert creds.server == described["endpoint"] and creds.name == "aws cluster made-demo"
    assert creds.token.startswith("k8s-aws-v1.")
    assert open(creds.ca_file, "rb").read() == base64.b64decode(described["certificateAuthority"]["data"])
    assert token_args(spec) == ["--cloud", "aws", "--cluster", "made-demo", "--region", "us-west-2"]


ARGS = ["--cloud", "aws", "--cluster", "prod", "--region", "us-west-2"]


def test_merge_writes_through_a_symlinked_kubeconfig(tmp_path):
    """~/.kube/config as a link into a dotfiles checkout: the link stays, its target gets the entry."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "kubeconfig"
    target.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}))
    target.chmod(0o600)
    link = tmp_path / "kube" / "config"
    link.parent.mkdir()
    link.symlink_to(Path("..") / "dotfiles" / "kubeconfig")
    assert kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", ARGS, link) is True
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert [c["name"] for c in yaml.safe_load(target.read_text())["contexts"]] == ["mlkit-demo"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in dotfiles.iterdir()) == ["kubeconfig"] and sorted(p.name for p in link.parent.iterdir()) == ["config"]


def test_merge_creates_the_kubeconfig_0600_from_its_first_byte(tmp_path, monkeypatch):
    """Every file created on the way is 0600 at creation, before a byte is written (umask 0 hides nothing)."""
    import os

    created = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode, *args, **kwargs)
        if flags & os.O_CREAT:
            created.append((str(path), stat.S_IMODE(os.fstat(fd).st_mode), os.fstat(fd).st_size, bool(flags & os.O_EXCL)))
        return fd

    old_umask = os.umask(0)
    monkeypatch.setattr(os, "open", watching_open)
    try:
        file = tmp_path / "new" / "config"
        assert kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", ARGS, file) is True
    finally:
        monkeypatch.undo()
        os.umask(old_umask)
    assert created and all(mode == 0o600 and size == 0 and exclusive for _, mode, size, exclusive in created), created
    assert all(Path(path).parent == file.parent for path, *_ in created)  # in the target's own folder, so the rename is atomic
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert [p.name for p in file.parent.iterdir()] == ["config"]  # no temp file left behind


@pytest.mark.parametrize(("before", "after"), [(0o644, 0o600), (0o640, 0o600), (0o600, 0o600), (0o400, 0o400)])
def test_merge_keeps_a_stricter_mode_and_tightens_a_looser_one(tmp_path, before, after):
    file = tmp_path / "config"
    file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config"}))
    file.chmod(before)
    assert kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", ARGS, file) is True
    assert stat.S_IMODE(file.stat().st_mode) == after
    assert "mlkit-demo" in file.read_text()


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize(
    "text, fragment",
    [
        # A "billion laughs": 10 aliases of 10 aliases, ... expands to billions of nodes if built naively.
        (LAUGHS, "aliases expand"),
        ("contexts: " + "[" * 200 + "]" * 200 + "\n", "nested more than"),
        ("\xff\xfe", "not UTF-8"),
    ],
    ids=["aliases", "depth", "not-utf8"],
)
def test_a_hostile_kubeconfig_is_one_error_not_a_hang(tmp_path, text, fragment):
    file = tmp_path / "config"
    file.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    with pytest.raises(UserError, match="not a kubeconfig mlkit can read") as raised:
        kubeconfig.credentials("demo", file)
    assert fragment in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def _config(cluster: dict | None = None, user: dict | None = None, **sections) -> dict:
    """A kubeconfig of context `ctx`, with the given cluster and user bodies, or whole sections replaced."""
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s", **(cluster or {})}}],
        "users": [{"name": "u", "user": user or {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    return config | sections


SHAPES = [
    ("contexts-mapping", _config(contexts={"ctx": {"cluster": "c"}}), "contexts: a dict, where kubectl expects a list of {name, context} entries"),
    ("contexts-strings", _config(contexts=["ctx"]), "contexts[0]: 'ctx' is not an entry with a name"),
    ("context-without-context", _config(contexts=[{"name": "ctx"}]), "context 'ctx': context: None is not a mapping"),
    ("ca-not-base64", _config(cluster={"certificate-authority-data": "not base64!"}), "cluster 'c': certificate-authority-data: not base64"),
    ("cert-without-key", _config(user={"client-certificate-data": "UEVN"}), "user 'u': client-certificate-data: a client certificate without client-key-data"),
    ("exec-without-command", _config(user={"exec": {"args": ["x"]}}), "user 'u': exec.command: None is not a non-empty string"),
    ("env-without-value", _config(user={"exec": {"command": "true", "env": [{"name": "A"}]}}), "exec.env[0]: {'name': 'A'} is not {name: NAME, value: VALUE}"),
    ("server-number", _config(cluster={"server": 5}), "cluster 'c': server: 5 is not a non-empty string"),
    ("server-not-url", _config(cluster={"server": "k8s.local"}), "cluster 'c': server: 'k8s.local' is not an http(s):// URL"),
    ("clusters-mapping", _config(clusters={"c": {}}), "clusters: a dict, where kubectl expects a list"),
    ("user-body-string", _config(users=[{"name": "u", "user": "token"}]), "user 'u': 'token' is not a mapping"),
    ("insecure-string-false", _config(cluster={"insecure-skip-tls-verify": "false"}), "verify: 'false' is not true or false (a YAML boolean, unquoted)"),
    ("insecure-number", _config(cluster={"insecure-skip-tls-verify": 1}), "insecure-skip-tls-verify: 1 is not true or false"),
    ("name-with-escape", _config(contexts=[{"name": "\x1b]0;owned\x07", "context": {"cluster": "c"}}]), "(contexts: \\x1b]0;owned\\x07)"),
]


@pytest.mark.parametrize(("config", "fragment"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_a_wrongly_shaped_kubeconfig_is_one_line_naming_the_field(tmp_path, config, fragment):
    """Each of these was a traceback (or, for a quoted "false", TLS verification turned off: bool("false") is True)."""
    file = tmp_path / "config"
    file.write_text(yaml.safe_dump(config))
    with pytest.raises(UserError) as raised:
        kubeconfig.credentials("ctx", file)
    message = str(raised.value)
    assert fragment in message and "\n" not in message and "\x1b" not in message, message


@pytest.mark.parametrize(("script", "fragment"), [
    ("print('nope')", "did not print an ExecCredential with a token (not valid JSON"),
    ("print('{\"status\": {}}')", "did not print an ExecCredential with a token (no status.token)"),
    ("print('[1]')", "did not print an ExecCredential with a token"),
    ("print('{\"status\": {\"token\": 5}}')", "printed a status.token that is not a non-empty string"),
])
def test_an_exec_plugin_printing_no_credential_is_one_line(tmp_path, script, fragment):
    file = tmp_path / "config"
    file.write_text(yaml.safe_dump(_config(user={"exec": {"command": sys.executable, "args": ["-c", script]}})))
    with pytest.raises(ToolError) as raised:
        kubeconfig.credentials("ctx", file)
    assert fragment in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_only_a_yaml_true_turns_tls_verification_off(tmp_path):
    file = tmp_path / "config"
    for value, insecure in ((True, True), (False, False), (None, False)):
        cluster = {} if value is None else {"insecure-skip-tls-verify": value}
        file.write_text(yaml.safe_dump(_config(cluster=cluster)))
        assert kubeconfig.credentials("ctx", file).insecure is insecure


def test_mlkit_status_with_a_wrongly_shaped_kubeconfig_is_one_line(tmp_path):
    from tests.conftest import assert_one_line_error, mlkit

    (tmp_path / "mlkit.yaml").write_text(
        "project: shape-demo\ncloud: aws\nregion: us-west-2\ncluster: {existing: {name: prod, context: ctx}}\n"
        "apis: [{name: a, predictor: predictor.py:Predictor, model: s3://models-m/a/}]\n"
    )
    (tmp_path / "predictor.py").write_text("class Predictor:\n    def __init__(self, c, m): pass\n    def predict(self, p): return p\n")
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(_config(cluster={"insecure-skip-tls-verify": "false"})))
    out = mlkit("status", cwd=tmp_path, env={"KUBECONFIG": str(tmp_path / "kubeconfig")}, timeout=120)
    assert_one_line_error(out, "insecure-skip-tls-verify: 'false' is not true or false")


def test_a_kubeconfig_that_is_not_a_regular_file_is_one_line_not_an_endless_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo")  # a read would wait for a writer for ever
    for file in (Path("/dev/zero"), tmp_path / "fifo"):
        with pytest.raises(UserError, match=f"^{file}: not a regular file; point KUBECONFIG at a kubeconfig file$"):
            kubeconfig.credentials("ctx", file)
        with pytest.raises(UserError, match="not a regular file"):
            kubeconfig.merge_context("mlkit-demo", "https://eks", "Q0E=", ARGS, file)
