"""Run the terraform CLI and read its machine-readable event stream as it happens.

Why not a wrapper library: python-terraform breaks on current terraform (destroy passes the removed
`-force`, apply without a plan file waits for approval), and tofupy 1.1.2 hands over the `-json`
events only after the process exits, which rules out live progress. A line reader over `Popen` is
all that is needed: terraform writes one JSON object per line (its "machine-readable UI").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import jsonbounds
from ..errors import ToolError, shown

Event = dict
OnEvent = Callable[[Event], None]

MIN_VERSION = (1, 5)


@dataclass
class Changes:
    add: int = 0
    change: int = 0
    remove: int = 0
    import_: int = 0

    @property
    def total(self) -> int:
        return self.add + self.change + self.remove + self.import_

    def __str__(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.remove} to destroy"


@dataclass
class RunResult:
    changes: Changes = field(default_factory=Changes)
    planned: list[dict] = field(default_factory=list)  # planned_change hooks: resource address and action
    outputs: dict = field(default_factory=dict)


def binary() -> str:
    found = os.environ.get("MLKIT_TERRAFORM") or shutil.which("terraform")
    if not found:
        raise ToolError(
            "terraform was not found on PATH. Install Terraform 1.5 or newer "
            "(https://developer.hashicorp.com/terraform/install), or set MLKIT_TERRAFORM to its path."
        )
    return found


class Terraform:
    """One root stack (a folder with main.tf)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.bin = binary()

    def _env(self) -> dict[str, str]:
        # Never prompt (we ask ourselves, before anything changes) and never colour (we parse the text).
        return os.environ | {"TF_INPUT": "0", "TF_IN_AUTOMATION": "1", "NO_COLOR": "1"}

    def check_version(self) -> str:
        proc = self._run_plain(["version", "-json"])
        try:
            version = str(jsonbounds.loads(proc.stdout).get("terraform_version", "0.0.0"))
            major, minor = (int(x) for x in version.split(".")[:2])
        except (jsonbounds.BadJson, AttributeError, ValueError):
            raise ToolError(f"`terraform version -json` printed no version mlkit can read: {shown(proc.stdout.strip(), 200)}") from None
        if (major, minor) < MIN_VERSION:
            raise ToolError(f"terraform {version} is too old; mlkit needs {MIN_VERSION[0]}.{MIN_VERSION[1]} or newer")
        return version

    def init(self) -> None:
        self._run_plain(["init", "-input=false", "-no-color"])

    def plan(self, out: Path, on_event: OnEvent, destroy: bool = False) -> RunResult:
        args = ["plan", "-input=false", "-json", "-detailed-exitcode", f"-out={out}"]
        if destroy:
            args.append("-destroy")
        # -detailed-exitcode: 0 no changes, 2 changes; both are success.
        return self._run_json(args, on_event, ok_codes=(0, 2))

    def apply(self, planfile: Path, on_event: OnEvent) -> RunResult:
        return self._run_json(["apply", "-input=false", "-json", "-auto-approve", str(planfile)], on_event)

    def output(self) -> dict:
        proc = self._run_plain(["output", "-json"])
        try:
            outputs = jsonbounds.loads(proc.stdout or "{}")
            return {k: v.get("value") for k, v in outputs.items()}
        except (jsonbounds.BadJson, AttributeError) as exc:  # numbers and nesting bounded: tool output is data too
            raise ToolError(f"`terraform output -json` in {self.workdir} printed what mlkit cannot read ({shown(str(exc), 200)})") from None

    def _run_plain(self, args: list[str]) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([self.bin, *args], cwd=self.workdir, env=self._env(), capture_output=True, text=True)
        except OSError as exc:
            raise ToolError(f"could not run {self.bin}: {exc}") from None
        if proc.returncode != 0:
            raise ToolError(f"`terraform {args[0]}` failed in {self.workdir}:\n{(proc.stderr or proc.stdout).strip()}")
        return proc

    def _run_json(self, args: list[str], on_event: OnEvent, ok_codes: tuple[int, ...] = (0,)) -> RunResult:
        result = RunResult()
        errors: list[str] = []
        try:
            proc = subprocess.Popen(
                [self.bin, *args], cwd=self.workdir, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
            )
        except OSError as exc:
            raise ToolError(f"could not run {self.bin}: {exc}") from None
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            try:
                event = jsonbounds.loads(line)
            except jsonbounds.BadJson:
                errors.append(line.rstrip())  # terraform prints some failures as plain text even with -json
                continue
            if not isinstance(event, dict):
                errors.append(line.rstrip())
                continue
            _collect(event, result, errors)
            on_event(event)
        stderr = proc.stderr.read()
        code = proc.wait()
        if code not in ok_codes:
            detail = "\n".join(errors) or stderr.strip() or f"exit code {code}"
            raise ToolError(f"`terraform {args[0]}` failed in {self.workdir}:\n{detail}")
        return result


def _collect(event: Event, result: RunResult, errors: list[str]) -> None:
    kind = event.get("type")
    if kind == "change_summary":
        c = event.get("changes", {})
        result.changes = Changes(c.get("add", 0), c.get("change", 0), c.get("remove", 0), c.get("import", 0))
    elif kind == "planned_change":
        change = event.get("change", {})
        result.planned.append({"address": change.get("resource", {}).get("addr", ""), "action": change.get("action", "")})
    elif kind == "outputs":
        result.outputs = {k: v.get("value") for k, v in event.get("outputs", {}).items()}
    elif kind == "diagnostic" and event.get("@level") == "error":
        errors.append(describe_diagnostic(event))


def describe_diagnostic(event: Event) -> str:
    d = event.get("diagnostic", {})
    where = ""
    rng = d.get("range")
    if rng:
        where = f" ({rng.get('filename')}:{rng.get('start', {}).get('line')})"
    elif d.get("address"):
        where = f" ({d['address']})"
    detail = (d.get("detail") or "").strip()
    return f"{d.get('severity', 'error')}: {d.get('summary', event.get('@message', ''))}{where}" + (f"\n  {detail}" if detail else "")
