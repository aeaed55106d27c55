"""Prometheus metrics of one server. The autoscaler (KEDA) scales on `mlkit_requests_in_flight`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self, admission) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlkit_requests", "Requests answered, by route and HTTP status.", ["route", "status"], registry=self.registry)
        self.latency = Histogram(
            "mlkit_request_duration_seconds", "Time from request arrival to response, by route.", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.in_flight = Gauge("mlkit_requests_in_flight", "Requests admitted and not yet answered (executing plus queued).", registry=self.registry)
        self.queue_depth = Gauge("mlkit_queue_depth", "Admitted requests waiting for an execution slot.", registry=self.registry)
        self.batch_size = Histogram("mlkit_batch_size", "Requests per predict_batch call.", buckets=BATCH_BUCKETS, registry=self.registry)
        self.predictor_errors = Counter("mlkit_predictor_errors", "Predictor calls that raised.", registry=self.registry)
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
        self._children: dict[tuple[str, int], tuple] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (self.requests.labels(route, str(status)), self.latency.labels(route))
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
