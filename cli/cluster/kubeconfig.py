"""kubeconfig: read a context to reach a cluster, and merge mlkit's own context into the file.

mlkit's entry uses the `exec` credential plugin with `mlkit token`, so kubectl works with the
cluster without the aws or gcloud CLI. Merging never overwrites an entry someone else wrote: an
entry of the same name with other contents is an error that names it.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import subprocess
from pathlib import Path

import yaml

from .. import jsonbounds, regularfile
from ..errors import ToolError, UserError, quoted, shown
from ..spec import yamlsafe
from .client import Credentials


def path() -> Path:
    configured = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(configured).expanduser() if configured else Path.home() / ".kube" / "config"


# A kubeconfig with many clusters is some KiB; every byte read is bounded.
MAX_BYTES = 16 * 2**20


def _load(file: Path) -> dict:
    if not file.exists():
        return {}
    try:
        # A regular file, bounded: KUBECONFIG=/dev/zero or a FIFO once read (or waited) for ever.
        raw = regularfile.read(file, MAX_BYTES)
    except regularfile.NotRegular:
        raise UserError(f"{file}: not a regular file; point KUBECONFIG at a kubeconfig file") from None
    except regularfile.TooLarge as exc:
        raise UserError(f"{file}: {exc.size:,} bytes; a kubeconfig is at most {MAX_BYTES // 2**20} MiB") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot read the kubeconfig ({exc.strerror})") from None
    try:
        # Bounded like the spec (aliases, depth): a kubeconfig can come from anyone's `KUBECONFIG` or a pull request.
        data = yamlsafe.compose(raw.decode("utf-8"))[1] or {}
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
    return next((e for e in entries or [] if isinstance(e, dict) and e.get("name") == name), None)


class _Shape:
    """Reads one kubeconfig, each value checked for the type kubectl expects before use: a wrongly shaped
    file (contexts as a mapping, `server: 5`, a quoted "false") is one line naming the field, never a
    traceback and never a guess."""

    def __init__(self, file: Path):
        self.file = file

    def bad(self, where: str, problem: str) -> UserError:
        return UserError(f"{self.file}: {where}: {problem}; fix the kubeconfig, or point KUBECONFIG at another")

    def entries(self, config: dict, section: str, body: str) -> list[dict]:
        value = config.get(section)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(section, f"a {type(value).__name__}, where kubectl expects a list of {{name, {body}}} entries")
        for i, entry in enumerate(value):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise self.bad(f"{section}[{i}]", f"{quoted(entry, 60)} is not an entry with a name (expected {{name: ..., {body}: {{...}}}})")
        return value

    def mapping(self, value: object, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.bad(where, f"{quoted(value, 60)} is not a mapping")
        return value

    def string(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.bad(where, f"{quoted(value, 60)} is not a non-empty string")
        return value

    def base64(self, value: object, where: str) -> bytes:
        try:
            return base64.b64decode(self.string(value, where), validate=True)
        except (binascii.Error, ValueError):
            raise self.bad(where, "not base64 (kubectl expects the PEM file base64-encoded on one line)") from None


def credentials(context: str, file: Path | None = None) -> Credentials:
    """How to reach the cluster of a kubeconfig context, with its token or client certificate resolved."""
    file = file or path()
    config = _load(file)
    shape = _Shape(file)
    contexts = shape.entries(config, "contexts", "context")
    ctx = _named(contexts, context)
    if ctx is None:
        names = ", ".join(shown(c["name"], 60) for c in contexts) or "none"
        raise UserError(f"{file} has no context {quoted(context)} (contexts: {shown(names, 400)}); fix cluster.existing.context in mlkit.yaml")
    where = f"context {quoted(context)}"
    body = shape.mapping(ctx.get("context"), f"{where}: context")
    cluster_name = shape.string(body.get("cluster"), f"{where}: context.cluster")
    user_name = body.get("user", "")
    if not isinstance(user_name, str):
        raise shape.bad(f"{where}: context.user", f"{quoted(user_name, 60)} is not a string")
    cluster = shape.mapping((_named(shape.entries(config, "clusters", "cluster"), cluster_name) or {}).get("cluster") or {}, f"cluster {quoted(cluster_name)}")
    user = shape.mapping((_named(shape.entries(config, "users", "user"), user_name) or {}).get("user") or {}, f"user {quoted(user_name)}")
    if "server" not in cluster:
        raise UserError(f"{file}: context {quoted(context)} names cluster {quoted(cluster_name)}, which has no server")
    server = shape.string(cluster["server"], f"cluster {quoted(cluster_name)}: server")
    if not server.startswith(("https://", "http://")):
        raise shape.bad(f"cluster {quoted(cluster_name)}: server", f"{quoted(server, 60)} is not an http(s):// URL")
    # Only a YAML boolean true turns verification off: bool("false") is True, so a quoted value once did.
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise shape.bad(
            f"cluster {quoted(cluster_name)}: insecure-skip-tls-verify",
            f"{quoted(insecure, 60)} is not true or false (a YAML boolean, unquoted); TLS verification stays on unless it is true",
        )
    creds = Credentials(server=server, name=f"context {context}", insecure=insecure)
    if "certificate-authority-data" in cluster:
        creds.ca_file = creds.pem_file(shape.base64(cluster["certificate-authority-data"], f"cluster {quoted(cluster_name)}: certificate-authority-data"))
    elif "certificate-authority" in cluster:
        creds.ca_file = str(Path(shape.string(cluster["certificate-authority"], f"cluster {quoted(cluster_name)}: certificate-authority")).expanduser())
    at = f"user {quoted(user_name)}"
    if "token" in user:
        creds.token = shape.string(user["token"], f"{at}: token")
    elif "exec" in user:
        creds.token = _exec_token(shape, shape.mapping(user["exec"], f"{at}: exec"), f"{at}: exec")
    elif "client-certificate-data" in user:
        if "client-key-data" not in user:
            raise shape.bad(f"{at}: client-certificate-data", "a client certificate without client-key-data; add the key, or use a token")
        creds.client_cert = (
            creds.pem_file(shape.base64(user["client-certificate-data"], f"{at}: client-certificate-data")),
            creds.pem_file(shape.base64(user["client-key-data"], f"{at}: client-key-data")),
        )
    return creds


# An ExecCredential is a token and a date, not megabytes: more is refused (after the plugin exits, so a
# plugin's output is bounded by its 60 s timeout rather than read in bounded pieces).
PLUGIN_MAX_BYTES = 1 << 20


def _exec_token(shape: _Shape, spec: dict, where: str) -> str:
    command_name = shape.string(spec.get("command"), f"{where}.command")
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise shape.bad(f"{where}.args", f"{shown(args, 60)} is not a list of strings")
    env_list = spec.get("env") or []
    if not isinstance(env_list, list):
        raise shape.bad(f"{where}.env", f"{shown(env_list, 60)} is not a list of {{name, value}} entries")
    env = dict(os.environ)
    for i, entry in enumerate(env_list):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("value"), str):
            raise shape.bad(f"{where}.env[{i}]", f"{shown(entry, 60)} is not {{name: NAME, value: VALUE}} with two strings")
        env[entry["name"]] = entry["value"]
    command = [command_name, *args]
    said = shown(" ".join(command))
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:  # ValueError: a NUL in an argument or variable
        raise ToolError(f"kubeconfig credential plugin `{said}` failed: {shown(str(exc), 300)}") from None
    if out.returncode != 0:
        raise ToolError(f"kubeconfig credential plugin `{said}` exited {out.returncode}: {shown(out.stderr.strip()[-300:], 300)}")
    if len(out.stdout) > PLUGIN_MAX_BYTES:
        raise ToolError(f"kubeconfig credential plugin `{said}` printed {len(out.stdout):,} characters; an ExecCredential is at most 1 MiB")
    try:
        status = jsonbounds.loads(out.stdout)["status"]
        token = status["token"]
    except (jsonbounds.BadJson, TypeError, KeyError) as exc:
        detail = str(exc) if isinstance(exc, jsonbounds.BadJson) else "no status.token"
        raise ToolError(f"kubeconfig credential plugin `{said}` did not print an ExecCredential with a token ({detail})") from None
    if not isinstance(token, str) or not token:
        raise ToolError(f"kubeconfig credential plugin `{said}` printed a status.token that is not a non-empty string")
    return token


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
