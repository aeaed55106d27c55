"""Live progress of a terraform run, drawn from its JSON events on stderr.

On a terminal one status line is redrawn in place; elsewhere (CI logs) each finished resource gets
its own line. With --json the events go to stdout unchanged, one per line, for scripts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from .runner import Event, describe_diagnostic

VERBS = {"create": "creating", "update": "updating", "delete": "destroying", "replace": "replacing", "read": "reading", "noop": "checking"}


class Progress:
    def __init__(self, total: int = 0, json_mode: bool = False, stream: TextIO | None = None, out: TextIO | None = None):
        self.total = total
        self.done = 0
        self.failed = 0
        self.json_mode = json_mode
        self.err = stream or sys.stderr
        self.out = out or sys.stdout
        self.tty = self.err.isatty()
        self.started = time.monotonic()
        self.running: dict[str, str] = {}
        self._line_open = False

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.started)
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"

    def __call__(self, event: Event) -> None:
        if self.json_mode:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()
        kind = event.get("type")
        hook = event.get("hook", {})
        addr = hook.get("resource", {}).get("addr", "")
        if kind == "apply_start":
            self.running[addr] = VERBS.get(hook.get("action", ""), hook.get("action", ""))
            self._status()
        elif kind == "apply_progress":
            self._status()
        elif kind == "apply_complete":
            self.running.pop(addr, None)
            self.done += 1
            self._finished(f"{hook.get('action', 'done')} {addr} ({hook.get('elapsed_seconds', 0)}s)")
        elif kind == "apply_errored":
            self.running.pop(addr, None)
            self.failed += 1
            self._finished(f"FAILED {addr}")
        elif kind == "diagnostic":
            level = event.get("@level")
            if level in ("warning", "error"):
                self._finished(describe_diagnostic(event))

    def _counter(self) -> str:
        total = max(self.total, self.done + len(self.running))
        return f"[{self.done}/{total}]" if total else f"[{self.done}]"

    def _status(self) -> None:
        if self.json_mode or not self.tty:
            return
        current = next(reversed(self.running.items()), None)
        what = f"{current[1]} {current[0]}" if current else "waiting"
        more = f" (+{len(self.running) - 1} more)" if len(self.running) > 1 else ""
        line = f"{self._counter()} {what}{more}, {self.elapsed()} elapsed"
        self.err.write("\r\x1b[2K" + line[:200])
        self.err.flush()
        self._line_open = True

    def _finished(self, message: str) -> None:
        if self.json_mode:
            return
        if self._line_open:
            self.err.write("\r\x1b[2K")
            self._line_open = False
        self.err.write(f"{self._counter()} {message}\n")
        self.err.flush()
        self._status()

    def close(self) -> None:
        if self._line_open:
            self.err.write("\r\x1b[2K")
            self.err.flush()
            self._line_open = False
