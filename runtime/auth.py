"""API keys: with a keys file, every route answers 401 unless the request carries one of its keys,
but for OPEN_PATHS.

The file is a mounted Kubernetes Secret (one key per line), which the kubelet updates in place when
the Secret changes; the runtime re-reads it when its modification time moves, at most every few
seconds, so keys rotate without a restart.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Mapping
from pathlib import Path

from . import logs
from .errors import SettingsError, Unauthorized

RECHECK_S = 5.0

# Open with keys on, and why: the kubelet's probes send no key (/healthz, /readyz, and OIP's health
# routes, which say only live or ready); Prometheus scrapes /metrics by pod annotation without one,
# and it holds counts and timings under fixed route names, no payloads. Everything else needs a key,
# the docs (/docs, /openapi.json: they name the model) and model metadata and readiness included,
# and so does a path no route serves: a stranger learns nothing about the API.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"})
# Routes whose Runtime.handle checks the key (and counts the 401 under the route): not checked twice.
HANDLED_PATHS = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/models", "/predict"})


class ApiKeys:
    def __init__(self, path: str):
        self.path = Path(path)
        self.mtime = -1.0
        self.checked = 0.0
        self.keys: list[bytes] = []
        self._load()
        if not self.keys:
            raise SettingsError(f"--api-keys-file / MLKIT_API_KEYS_FILE: {self.path} holds no keys; put one key per line")

    def _load(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            if mtime != self.mtime:
                self.mtime = mtime  # a file that cannot be read is tried again when it changes, not every check
                lines = self.path.read_text(encoding="utf-8").splitlines()
                self.keys = [line.strip().encode() for line in lines if line.strip() and not line.startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text (byte {exc.start})"
            if not self.keys:  # at start-up; later, keep the keys we have while the volume is swapped
                raise SettingsError(f"--api-keys-file / MLKIT_API_KEYS_FILE: cannot read {self.path}: {why}") from None
            logs.log.warning("API keys file %s: cannot read it (%s); keeping the %d keys read before", self.path, why, len(self.keys))

    def check(self, headers: Mapping[str, str]) -> None:
        now = time.monotonic()
        if now - self.checked > RECHECK_S:
            self.checked = now
            self._load()
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        if not given:
            raise Unauthorized("this API needs a key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
        candidate = given.encode()
        # compare_digest against every key, so timing does not tell which one nearly matched
        if not any([hmac.compare_digest(candidate, key) for key in self.keys]):
            raise Unauthorized("the API key is not valid for this API; ask its owner for a current key")
