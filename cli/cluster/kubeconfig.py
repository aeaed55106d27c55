"""kubeconfig: read a context to reach a cluster, and merge mlkit's own context into the file.

mlkit's entry uses the `exec` credential plugin with `mlkit token`, so kubectl works with the
cluster without the aws or gcloud CLI. Merging never overwrites an entry someone else wrote: an
entry of the same name with other contents is an error that names it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import yaml

from ..errors import ToolError, UserError
from ..spec import yamlsafe
from .client import Credentials


def path() -> Path:
    configured = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(configured).expanduser() if configured else Path.home() / ".kube" / "config"


def _load(file: Path) -> dict:
    if not file.exists():
        return {}
    try:
        # Bounded like the spec (aliases, depth): a kubeconfig can come from anyone's `KUBECONFIG` or a pull request.
        data = yamlsafe.compose(file.read_text(encoding="utf-8"))[1] or {}
    except UnicodeDecodeError:
        raise UserError(f"{file}: not a kubeconfig mlkit can read (not UTF-8 text)") from None
    except yaml.YAMLError as exc:  # one line: the problem and where, not PyYAML's multi-line excerpt
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{file}: not a kubeconfig mlkit can read ({problem}{f' at line {mark.line + 1}' if mark else ''})") from None
    if not isinstance(data, dict):
        raise UserError(f"{file}: not a kubeconfig (expected a mapping at the top)")
    return data


def _named(entries: list | None, name: str) -> dict | None:
    return next((e for e in entries or [] if e.get("name") == name), None)


def credentials(context: str, file: Path | None = None) -> Credentials:
    """How to reach the cluster of a kubeconfig context, with its token or client certificate resolved."""
    file = file or path()
    config = _load(file)
    ctx = _named(config.get("contexts"), context)
    if ctx is None:
        names = ", ".join(c.get("name", "?") for c in config.get("contexts") or []) or "none"
        raise UserError(f"{file} has no context '{context}' (contexts: {names}); fix cluster.existing.context in mlkit.yaml")
    cluster = (_named(config.get("clusters"), ctx["context"]["cluster"]) or {}).get("cluster") or {}
    user = (_named(config.get("users"), ctx["context"].get("user", "")) or {}).get("user") or {}
    if "server" not in cluster:
        raise UserError(f"{file}: context '{context}' names cluster '{ctx['context']['cluster']}', which has no server")
    creds = Credentials(server=cluster["server"], name=f"context {context}", insecure=bool(cluster.get("insecure-skip-tls-verify")))
    if "certificate-authority-data" in cluster:
        creds.ca_file = creds.pem_file(base64.b64decode(cluster["certificate-authority-data"]))
    elif "certificate-authority" in cluster:
        creds.ca_file = str(Path(cluster["certificate-authority"]).expanduser())
    if "token" in user:
        creds.token = user["token"]
    elif "exec" in user:
        creds.token = _exec_token(user["exec"])
    elif "client-certificate-data" in user:
        creds.client_cert = (
            creds.pem_file(base64.b64decode(user["client-certificate-data"])),
            creds.pem_file(base64.b64decode(user["client-key-data"])),
        )
    return creds


def _exec_token(spec: dict) -> str:
    env = os.environ | {e["name"]: e["value"] for e in spec.get("env") or []}
    command = [spec["command"], *(spec.get("args") or [])]
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"kubeconfig credential plugin `{' '.join(command)}` failed: {exc}") from None
    if out.returncode != 0:
        raise ToolError(f"kubeconfig credential plugin `{' '.join(command)}` exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)["status"]["token"]


def merge_context(name: str, server: str, ca_data: str, token_args: list[str], file: Path | None = None) -> bool:
    """Add cluster, user and context `name` to the kubeconfig; True if the file changed."""
    file = file or path()
    config = _load(file) or {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    entries = {
        "clusters": {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}},
        "users": {
            "name": name,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "mlkit",
                    "args": ["token", *token_args],
                    "interactiveMode": "Never",
                }
            },
        },
        "contexts": {"name": name, "context": {"cluster": name, "user": name}},
    }
    changed = False
    for section, entry in entries.items():
        current = _named(config.get(section), name)
        if current == entry:
            continue
        if current is not None:
            raise UserError(
                f"{file} already has a {section[:-1]} named '{name}' with other settings; mlkit does not overwrite it. "
                f"Rename or remove that entry (kubectl config delete-{section[:-1]} {name}), then run again"
            )
        config.setdefault(section, []).append(entry)
        changed = True
    if changed:
        config.setdefault("current-context", name)
        _write(file, yaml.safe_dump(config, sort_keys=False))
    return changed


def _write(file: Path, text: str) -> None:
    """Replace the kubeconfig atomically, through links, never readable by others.

    A kubeconfig is often a link into a dotfiles checkout: the link stays and its target gets the
    new content (the temp file goes beside the resolved target, so the rename stays on its disk).
    The file holds credentials, so it is 0600 from its first byte, as kubectl writes it; a stricter
    mode someone chose (0400) is kept, a looser one (0644) is tightened to 0600.
    """
    from ..projectfs import atomic_write

    target = Path(os.path.realpath(file))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) & 0o600
    except FileNotFoundError:
        mode = 0o600
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        atomic_write(target, text.encode("utf-8"), mode or 0o600)
    except OSError as exc:
        raise UserError(f"{file}: cannot write the kubeconfig ({exc.strerror}); fix the file's folder or set KUBECONFIG to another file") from None
