"""Every runtime setting in one place: command-line flag, environment variable, default.

The CLI (`mlkit serve`) and the Kubernetes manifests set the environment variables; a flag wins over
its variable. Names are `MLKIT_` plus the flag in upper case.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import SettingsError as SettingsError  # raised here; importers of settings still find it here

# A bucket name as both clouds allow it (the cloud checks the rest when it is used).
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True)
class Settings:
    predictor: str = field(default="", metadata={"help": "Predictor class as FILE.py:ClassName (or module:ClassName)."})
    model_dir: str = field(default=".", metadata={"help": "Folder with the model files, handed to the predictor."})
    name: str = field(default="model", metadata={"help": "Model name in the KServe v1 and Open Inference Protocol v2 routes."})
    config: str = field(default="{}", metadata={"help": "Predictor config: a JSON object, or @path/to/config.json."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on; 0.0.0.0 in a container."})
    port: int = field(default=8080, metadata={"help": "Port to listen on."})
    max_batch_size: int = field(default=8, metadata={"help": "Most requests in one predict_batch call (batching is on when the predictor has predict_batch)."})
    max_wait_ms: float = field(default=10.0, metadata={"help": "Longest a request waits for its batch to fill."})
    max_in_flight: int = field(default=32, metadata={"help": "Requests executing at once; more wait in the queue."})
    max_queue: int = field(default=64, metadata={"help": "Requests waiting; beyond this the server answers 503 with Retry-After."})
    max_body_bytes: int = field(default=10 * 1024 * 1024, metadata={"help": "Largest request body; larger ones get 413."})
    # Hostile-input bounds: checked before any work is done for a request.
    max_json_depth: int = field(default=64, metadata={"help": "Deepest nesting of arrays and objects in a JSON body; deeper ones get 400."})
    max_instances: int = field(default=1024, metadata={"help": "Most instances in one KServe v1 request; more get 413 (split the request)."})
    body_timeout_s: float = field(
        default=30.0, metadata={"help": "Longest a request body may take to arrive; a slower one gets 408, so stalled clients cannot hold slots."}
    )
    drain_delay_s: float = field(
        default=0.0, metadata={"help": "After SIGTERM, keep serving this long while /readyz says 503, so load balancers stop sending."}
    )
    drain_timeout_s: float = field(default=30.0, metadata={"help": "After the drain delay, how long accepted requests may take to finish."})
    api_keys_file: str = field(
        default="", metadata={"help": "File of API keys, one per line; "
                                      "when set, predict routes answer 401 without `Authorization: Bearer <key>` or `X-API-Key`."}
    )
    monitor_key: str = field(default="", metadata={"help": "Prediction monitoring: the key of each prediction (an object) to export; empty: off."})
    monitor_type: str = field(default="", metadata={"help": "classification (a count per predicted class) or regression (a histogram of values)."})
    monitor_buckets: str = field(default="", metadata={"help": "Regression only: histogram bucket bounds, comma-separated, increasing; empty: defaults."})
    # Async APIs (runtime/asyncq/): the front queues requests and reads results; workers run the predictor from the queue.
    mode: str = field(
        default="realtime",
        metadata={"help": "realtime (answer while the client waits); front (async: queue requests, read results); worker (async: run the "
                          "predictor on queued requests); async (front and worker in one process, for `mlkit serve`)."},
    )
    queue: str = field(
        default="", metadata={"help": "Async modes: local (an in-process queue; --mode async only), sqs:QUEUE_URL, or "
                                      "pubsub:projects/P/topics/T/subscriptions/S (the topic the front publishes to, the subscription workers pull)."}
    )
    dead_letter: str = field(
        default="", metadata={"help": "Async modes: where a request that failed every attempt goes: an SQS queue (sqs:URL) or a Pub/Sub topic "
                                      "(pubsub:projects/P/topics/T); the local queue keeps its own. Empty: failed requests are only recorded."}
    )
    results: str = field(
        default="", metadata={"help": "Async modes: where results are kept, by id: a folder (file:/path), s3://bucket/prefix or gs://bucket/prefix."}
    )
    visibility_timeout_s: float = field(
        default=300.0, metadata={"help": "Async worker: seconds one attempt holds a request; extended while the predictor runs."}
    )
    max_attempts: int = field(default=5, metadata={"help": "Async worker: attempts before a request ends failed (and is dead-lettered)."})
    fronts: str = field(
        default="1",
        metadata={"help": "HTTP front processes: 1 serves in one process (the default); N > 1 runs N fronts on the port and one model "
                          "process that loads the predictor once and batches across them; auto: from the CPU quota of the cgroup "
                          "(docs/guides/processes.md)."},
    )
    model_processes: str = field(
        default="1",
        metadata={"help": "Model processes: 1 loads the predictor once, seeing every device (the default); auto: one per visible GPU "
                          "(CUDA_VISIBLE_DEVICES, else NVIDIA_VISIBLE_DEVICES), each pinned to its GPU; N: N processes, round-robin over "
                          "the GPUs. More than one runs behind HTTP fronts (docs/guides/processes.md)."},
    )
    shared_memory_mb: int = field(
        default=64,
        metadata={"help": "With fronts: MiB of shared memory per front for tensors on their way to the model process (pages are taken "
                          "only when used); buffers of 64 KiB and more go through it instead of the link's socket. 0: off."},
    )
    access_log: bool = field(default=True, metadata={"help": "Write one JSON line per request to stdout."})
    log_level: str = field(default="info", metadata={"help": "Log level of the server's own messages."})
    debug: bool = field(default=False, metadata={"help": "Show the traceback when the predictor fails to load (otherwise one line)."})

    @staticmethod
    def env_name(name: str) -> str:
        return "MLKIT_" + name.upper()

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then MLKIT_* variables, then explicit overrides (flags); every value checked."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (overrides or {}).get(f.name)
            source = f"--{f.name.replace('_', '-')}"
            if raw is None and cls.env_name(f.name) in env:
                raw, source = env[cls.env_name(f.name)], cls.env_name(f.name)
            if raw is None:
                continue
            values[f.name] = _convert(raw, type(f.default), source)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not self.predictor and self.mode != "front":  # the front queues and reads; it never runs the predictor
            raise SettingsError("no predictor given: pass --predictor predictor.py:Predictor or set MLKIT_PREDICTOR")
        self.check_async()
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port / MLKIT_PORT must be 0 to 65535, got {self.port}")
        for name in ("max_batch_size", "max_in_flight", "max_json_depth", "max_instances", "body_timeout_s"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} / {self.env_name(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("max_queue", "max_wait_ms", "drain_delay_s", "drain_timeout_s", "max_body_bytes", "shared_memory_mb"):
            if getattr(self, name) < 0:
                raise SettingsError(f"--{name.replace('_', '-')} / {self.env_name(name)} must not be negative, got {getattr(self, name)}")
        if self.shared_memory_mb > 65536:
            raise SettingsError(f"--shared-memory-mb / MLKIT_SHARED_MEMORY_MB must be at most 65536 (64 GiB per front), got {self.shared_memory_mb}")
        self.predictor_config()
        self.monitoring()
        self.front_count()
        self.model_devices()
        if self.api_keys_file:
            from .auth import ApiKeys  # reads the file now, so a missing or empty one stops start-up

            ApiKeys(self.api_keys_file)

    def front_count(self) -> int:
        """How many HTTP front processes: 1 is today's single process (docs/guides/processes.md)."""
        from .cpus import MAX_FRONTS, fronts_for

        if self.fronts == "auto":
            return fronts_for(None)
        if not self.fronts.isdigit() or not 1 <= int(self.fronts) <= MAX_FRONTS:
            raise SettingsError(f"--fronts / MLKIT_FRONTS must be auto or a number from 1 to {MAX_FRONTS}, got {self.fronts[:40]!r}")
        if int(self.fronts) > 1 and self.mode != "realtime":
            raise SettingsError(f"--fronts / MLKIT_FRONTS: {self.fronts} fronts serve realtime APIs only; an async {self.mode} runs in one process")
        return int(self.fronts)

    def model_devices(self) -> list[str | None]:
        """One entry per model process: the CUDA_VISIBLE_DEVICES it is pinned to, or None (runtime/devices.py)."""
        from .devices import model_process_devices

        devices = model_process_devices(self.model_processes)
        if len(devices) > 1 and self.mode != "realtime":
            raise SettingsError(f"--model-processes / MLKIT_MODEL_PROCESSES: {len(devices)} model processes serve realtime APIs only; "
                                f"an async {self.mode} runs in one process")
        return devices

    def check_async(self) -> None:
        modes = ("realtime", "front", "worker", "async")
        if self.mode not in modes:
            raise SettingsError(f"--mode / MLKIT_MODE: {self.mode!r} is not one of {', '.join(modes)}")
        if self.mode == "realtime":
            return
        if not self.queue or not self.results:
            raise SettingsError(f"--mode {self.mode} needs --queue / MLKIT_QUEUE and --results / MLKIT_RESULTS")
        if self.queue == "local" and self.mode != "async":
            raise SettingsError("--queue local is an in-process queue: it works only with --mode async (front and worker in one process)")
        if not (self.queue == "local" or self.queue.startswith(("sqs:", "pubsub:"))):
            raise SettingsError(f"--queue / MLKIT_QUEUE: {self.queue[:100]!r} is not local, sqs:QUEUE_URL or pubsub:projects/P/topics/T/subscriptions/S")
        bucket = self.results.split("://", 1)[1].split("/", 1)[0] if self.results.startswith(("s3://", "gs://")) else None
        if not (self.results.startswith("file:") and len(self.results) > len("file:")) and not (bucket and BUCKET.fullmatch(bucket)):
            raise SettingsError(f"--results / MLKIT_RESULTS: {self.results[:100]!r} is not file:/folder, s3://bucket/prefix or gs://bucket/prefix")
        backend = self.queue.split(":", 1)[0]
        if self.dead_letter and (backend == "local" or not self.dead_letter.startswith(backend + ":")):
            raise SettingsError(
                f"--dead-letter / MLKIT_DEAD_LETTER: {self.dead_letter[:100]!r} does not go with --queue {backend}: "
                "give sqs:QUEUE_URL with an SQS queue, pubsub:projects/P/topics/T with Pub/Sub (the local queue keeps its own)"
            )
        if self.queue.startswith("pubsub:"):
            from .asyncq.pubsub_paths import check

            try:
                check(self.queue[len("pubsub:"):], self.dead_letter[len("pubsub:"):] if self.dead_letter else None)
            except ValueError as exc:
                raise SettingsError(f"--queue / --dead-letter: {exc}") from None
        if self.visibility_timeout_s < 1 or self.max_attempts < 1:
            raise SettingsError("--visibility-timeout-s and --max-attempts must be at least 1")

    def monitoring(self) -> tuple[str, str, tuple[float, ...]] | None:
        """(key, type, buckets) when prediction monitoring is on, else None; every value checked."""
        if not self.monitor_key and not self.monitor_type:
            return None
        if not self.monitor_key or self.monitor_type not in ("classification", "regression"):
            raise SettingsError(
                "--monitor-key / MLKIT_MONITOR_KEY and --monitor-type / MLKIT_MONITOR_TYPE go together; "
                f"the type is classification or regression, got key {self.monitor_key!r} and type {self.monitor_type!r}"
            )
        buckets: tuple[float, ...] = ()
        if self.monitor_buckets.strip():
            try:
                buckets = tuple(float(b) for b in self.monitor_buckets.split(","))
            except ValueError:
                raise SettingsError(f"--monitor-buckets / MLKIT_MONITOR_BUCKETS: {self.monitor_buckets!r} is not a comma-separated list of numbers") from None
            if any(not math.isfinite(b) for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise SettingsError(f"--monitor-buckets / MLKIT_MONITOR_BUCKETS: {self.monitor_buckets!r} must be finite numbers in increasing order")
        return self.monitor_key, self.monitor_type, buckets

    def predictor_config(self) -> dict[str, Any]:
        text = self.config
        where = "--config / MLKIT_CONFIG"
        if text.startswith("@"):
            path = Path(text[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"{where}: cannot read {path}: {exc.strerror}") from None
            where = str(path)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: must be a JSON object, e.g. {{\"threshold\": 0.5}}")
        return value


def _convert(raw: Any, kind: type, source: str) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        expected = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, kind.__name__)
        raise SettingsError(f"{source}: {text!r} is not {expected}") from None
