"""New API keys never reach stdout or stderr of automation: `mlkit apply` writes each to a 0600
file under .mlkit/secrets (git-ignored) and prints its path; a person at a terminal also sees the
key. Run as in test_operate: the real CLI, kmock's Kubernetes emulator and moto."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import stat
import subprocess
import sys

import pytest

from tests.commands.test_operate import NS, Controller, proj, push_images  # noqa: F401 (proj: the operate tests' project fixture)
from tests.conftest import assert_one_line_error, mlkit


@pytest.fixture
def keyed(request):
    """The operate tests' project, with API keys on for sentiment."""
    root, env = request.getfixturevalue("proj")
    spec = root / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("    config: {threshold: 0.5}\n", "    config: {threshold: 0.5}\n    api_keys: true\n"))
    assert "api_keys: true" in spec.read_text()
    assert mlkit("render", cwd=root, env=env).returncode == 0
    return root, env


def apply_apis(root, env, k8s, *flags: str):
    """`mlkit apply --only apis` with the test playing the Deployment controller."""
    controller = Controller(k8s.url)
    try:
        return mlkit("apply", "--only", "apis", "--timeout", "30", *flags, cwd=root, env=env)
    finally:
        controller.close()


def secret_key(k8s, api: str) -> str:
    secret = next(s for s in k8s.objects("secrets") if s["metadata"]["name"] == f"{api}-api-keys")
    assert secret["metadata"]["namespace"] == NS
    return base64.b64decode(secret["data"]["keys"]).decode().split()[0]


def test_apply_json_auto_approve_writes_the_new_key_to_a_0600_file_and_prints_only_its_path(keyed, k8s, moto):
    root, env = keyed
    push_images(root, moto)
    applied = apply_apis(root, env, k8s, "--json", "--auto-approve")
    assert applied.returncode == 0, applied.stderr[-3000:]
    key = secret_key(k8s, "sentiment")
    assert key not in applied.stdout and key not in applied.stderr
    file = root / ".mlkit/secrets/sentiment.key"
    assert file.read_text() == key + "\n"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert ".mlkit/secrets/sentiment.key" in applied.stderr
    assert json.loads(applied.stdout)["apis"]["key_files"] == {"sentiment": ".mlkit/secrets/sentiment.key"}
    assert "new_keys" not in json.loads(applied.stdout)["apis"]
    assert (root / ".mlkit/secrets/.gitignore").read_text().splitlines()[-1] == "*"
    assert "secrets/" in (root / ".mlkit/.gitignore").read_text()
    # Keys are never overwritten: a second apply makes none, prints none, leaves the file.
    again = mlkit("apply", "--only", "apis", "--timeout", "5", cwd=root, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "API key of" not in again.stderr and file.read_text() == key + "\n"


def test_a_key_file_path_that_is_a_symlink_is_not_written_through(keyed, k8s, moto, sentinel):
    root, env = keyed
    push_images(root, moto)
    (root / ".mlkit/secrets").mkdir()
    (root / ".mlkit/secrets/sentiment.key").symlink_to(sentinel.root / "notes.txt")
    applied = apply_apis(root, env, k8s, "--json")
    assert applied.returncode == 0, applied.stderr[-3000:]
    # The link itself is replaced by the key file; what it pointed at is untouched.
    file = root / ".mlkit/secrets/sentiment.key"
    assert not file.is_symlink() and stat.S_IMODE(file.stat().st_mode) == 0o600
    sentinel.assert_untouched()


def test_a_person_at_a_terminal_sees_the_key_once(keyed, k8s, moto):
    root, env = keyed
    push_images(root, moto)
    controller = Controller(k8s.url)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlkit", "apply", "--only", "apis", "--timeout", "30"],
            cwd=root, env=os.environ | env, stdin=slave, stderr=slave, stdout=subprocess.PIPE,
        )
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0, seen.decode(errors="replace")[-3000:]
    finally:
        controller.close()
        os.close(master)
    key = secret_key(k8s, "sentiment")
    assert key in seen.decode(errors="replace")
    assert (root / ".mlkit/secrets/sentiment.key").read_text() == key + "\n"


def test_a_linked_secrets_folder_is_refused_and_the_key_stays_unprinted(keyed, k8s, moto, sentinel):
    root, env = keyed
    push_images(root, moto)
    (root / ".mlkit/secrets").symlink_to(sentinel.root / "secrets", target_is_directory=True)
    applied = apply_apis(root, env, k8s, "--json", "--auto-approve")
    assert_one_line_error(applied, ".mlkit/secrets is a symbolic link", "kubectl get secret sentiment-api-keys -n ops-demo")
    key = secret_key(k8s, "sentiment")
    assert key not in applied.stdout and key not in applied.stderr
    sentinel.assert_untouched()
