"""Prometheus metrics of one server. The autoscaler (KEDA) scales on `mlkit_requests_in_flight`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from .admission import Admission

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# How long async requests wait for a worker: from under a second on a busy queue to hours behind a backlog.
WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0)
# Predicted values of a regression API, when the spec gives no buckets: symmetric, a few per decade.
VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -5.0, -2.0, -1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0)
# A predictor (or whoever controls its input) must not be able to grow the series without bound:
# the first MAX_CLASSES distinct classes get their own series, every later one counts as OTHER.
MAX_CLASSES = 100
MAX_CLASS_CHARS = 64
OTHER = "other"


class Metrics:
    def __init__(self, admission: Admission) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlkit_requests", "Requests answered, by route and HTTP status.", ["route", "status"], registry=self.registry)
        self.latency = Histogram(
            "mlkit_request_duration_seconds", "Time from request arrival to response, by route.", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.in_flight = Gauge(IN_FLIGHT, IN_FLIGHT_HELP, registry=self.registry, multiprocess_mode="livemax")
        self.queue_depth = Gauge(QUEUE_DEPTH, QUEUE_DEPTH_HELP, registry=self.registry, multiprocess_mode="livemax")
        self.batch_size = Histogram("mlkit_batch_size", "Requests per predict_batch call.", buckets=BATCH_BUCKETS, registry=self.registry)
        self.predictor_errors = Counter("mlkit_predictor_errors", "Predictor calls that raised.", registry=self.registry)
        # Async APIs: the front counts what it queued, workers what they finished, retried and failed for good.
        self.async_submitted = Counter("mlkit_async_submitted", "Async requests queued (answered 202).", registry=self.registry)
        self.async_completed = Counter("mlkit_async_completed", "Async requests whose result a worker wrote.", registry=self.registry)
        self.async_retried = Counter("mlkit_async_retried", "Async attempts that failed and were released for another.", registry=self.registry)
        self.async_failed = Counter("mlkit_async_failed", "Async requests that failed their last attempt (dead-lettered).", registry=self.registry)
        # The queue's age as the workers see it (the dashboard's; `mlkit status` reads the cloud's own oldest-age metric).
        self.async_wait = Histogram(
            "mlkit_async_queue_wait_seconds", "Time from an async request's submission to a worker taking it (each attempt).",
            buckets=WAIT_BUCKETS, registry=self.registry,
        )
        self.rejected = Counter("mlkit_requests_rejected", "Requests refused with 503 because the server was full.", registry=self.registry)
        # Generation (the OpenAI routes): what an LLM server is judged and scaled on.
        self.time_to_first_token = Histogram(
            "mlkit_time_to_first_token_seconds", "Time from request arrival to the first generated token.", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.inter_token_latency = Histogram(
            "mlkit_inter_token_latency_seconds", "Time between consecutive generated tokens of one request.", buckets=TOKEN_BUCKETS, registry=self.registry
        )
        self.generated_tokens = Counter("mlkit_generated_tokens", "Tokens generated (completion tokens), all requests.", registry=self.registry)
        # Read at scrape time: no per-request bookkeeping for the gauges.
        self.in_flight.set_function(lambda: admission.admitted)
        self.queue_depth.set_function(lambda: admission.queued)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        # Several processes (runtime/fronts.py): /metrics answers for the pod, from every process's files.
        self.pod = PodView(admission) if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (self.requests.labels(route, str(status)), self.latency.labels(route))
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> bytes:
        if self.pod is not None:
            registry = CollectorRegistry()
            registry.register(self.pod)
            return generate_latest(registry)
        return generate_latest(self.registry)


IN_FLIGHT, IN_FLIGHT_HELP = "mlkit_requests_in_flight", "Requests admitted and not yet answered (executing plus queued)."
QUEUE_DEPTH, QUEUE_DEPTH_HELP = "mlkit_queue_depth", "Admitted requests waiting for an execution slot."


class PodView:
    """One view of a pod of several processes: counters and histograms summed over the fronts and the
    model process (prometheus_client's multiprocess files), and the admission gauges read live from the
    pod's shared counter rather than from any one process."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        for family in MultiProcessCollector(None).collect():  # type: ignore[no-untyped-call]
            if family.name not in (IN_FLIGHT, QUEUE_DEPTH):
                yield family
        yield GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP, value=self.admission.admitted)
        yield GaugeMetricFamily(QUEUE_DEPTH, QUEUE_DEPTH_HELP, value=self.admission.queued)


class PredictionMonitor:
    """Prediction monitoring (the API's `monitoring:`): a metric from one key of each prediction.

    classification: counter `mlkit_predicted_class_total{class}`; regression: histogram
    `mlkit_predicted_value`. Predictions that are not an object with that key, or whose value is of
    the wrong kind, count in `mlkit_predictions_unmonitored_total` instead, so a silent mismatch
    between the spec and the predictor shows on the dashboard.
    """

    def __init__(self, registry: CollectorRegistry, key: str, kind: str, buckets: tuple[float, ...] = VALUE_BUCKETS) -> None:
        self.key = key
        self.unmonitored = Counter(
            "mlkit_predictions_unmonitored", "Predictions without a usable monitoring key (not an object, no such key, a wrong kind).", registry=registry
        )
        self.classes: Counter | None = None
        self.values: Histogram | None = None
        if kind == "classification":
            help_ = f"Predictions by the class in their {key!r} key (at most {MAX_CLASSES} classes; later ones count as {OTHER!r})."
            self.classes = Counter("mlkit_predicted_class", help_, ["class"], registry=registry)
        else:
            self.values = Histogram("mlkit_predicted_value", f"The number in each prediction's {key!r} key.", buckets=buckets, registry=registry)
        self._children: dict[str, Any] = {}

    def observe(self, prediction: Any) -> None:
        value = prediction.get(self.key) if isinstance(prediction, dict) else None
        if self.classes is not None:
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (int, float)) and math.isfinite(value):
                value = str(value)
            if not isinstance(value, str):
                self.unmonitored.inc()
                return
            child = self._children.get(value)
            if child is None:
                if len(self._children) < MAX_CLASSES and len(value) <= MAX_CLASS_CHARS:
                    child = self._children[value] = self.classes.labels(value)
                else:  # past the bound: one shared series, looked up each time (only a flood of classes comes here)
                    child = self.classes.labels(OTHER)
            child.inc()
            return
        assert self.values is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.unmonitored.inc()
            return
        self.values.observe(value)
