"""The project's Grafana dashboard: one row per API, every query over metrics its server exports (the
runtime's, or for an engine API the engine's own, e.g. vLLM's `vllm:*`).

Rendered twice: `infra/dashboards/<project>.json` to import by hand, and a ConfigMap labelled
`grafana_dashboard: "1"` under `infra/k8s/_shared/`, which Grafana's dashboard sidecar (the
kube-prometheus-stack and grafana charts' `sidecar.dashboards`) loads on its own. Built with Grafana's
foundation SDK so that panel and field names follow Grafana's schema instead of hand-written JSON.

Queries select by the labels Prometheus' `kubernetes-pods` scrape job adds (the namespace, and each pod
label with dots and slashes as `_`), the same labels the ScaledObjects' query uses; a test runs every
query against a real Prometheus scraping a real runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import labels, placement
from ..spec.schema import Api, Spec
from .engine_view import autoscaling_targets

if TYPE_CHECKING:
    import jinja2

DASHBOARDS = PurePosixPath("infra/dashboards")
# Grafana's dashboard sidecar picks up ConfigMaps carrying this label (its chart default).
SIDECAR_LABEL = {"grafana_dashboard": "1"}
# Metrics from outside the runtime that panels may use: the scrape's own `up`, NVIDIA's DCGM
# exporter (GPU nodes on GKE and the NVIDIA GPU operator export it; the panel stays empty elsewhere), and
# the KEDA operator's value of each scaler's metric (an async API's queue depth, as its trigger reads it:
# KEDA 2.20 pkg/metricscollector/prommetrics.go; the add-ons stack turns the operator's metrics on and
# has them scraped where the spec has async APIs, templates/terraform/serving.tf.j2).
KEDA_METRIC = "keda_scaler_metrics_value"
EXTERNAL_METRICS = frozenset({"up", "DCGM_FI_DEV_GPU_UTIL", KEDA_METRIC})


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str


def api_selector(spec: Spec, api: str) -> str:
    return f'namespace="{spec.k8s_namespace}",{labels.prometheus_label(labels.API)}="{api}"'


# Kubernetes names a Deployment's pods <deployment>-<ReplicaSet hash>-<suffix>, both drawn from the
# vowel-free alphabet of k8s.io/apimachinery pkg/util/rand (rand.go, `alphanums`): the hash up to 10
# characters (SafeEncodeString of a 32-bit hash), the suffix 5. `chat-.*` also matched API chat-gpu's pods.
_RAND = "[bcdfghjklmnpqrstvwxz2456789]"


def api_pods(api: Api) -> str:
    """A PromQL regex (anchored by PromQL) for the pods of `api` and of its canary, and no other API's."""
    deployments = f"{api.name}(-canary)?" if api.canary else api.name
    return f"{deployments}-{_RAND}{{1,10}}-{_RAND}{{5}}"


def panels(spec: Spec, api: Api) -> list[PanelSpec]:
    """The panels of one API's row, decided; `dashboard()` lays them out."""
    sel = api_selector(spec, api.name)
    out = _engine_panels(sel, api) if api.engine is not None else _runtime_panels(sel, api)
    if api.kind == "async":
        # Its front alone scales on requests in flight (its workers hold none): the ratio is over the front's pods.
        from .asyncapi import FRONT

        front = f'{sel},{labels.prometheus_label(labels.TRACK)}="{FRONT}"'
        out = [_in_flight(front, api) if p.title == IN_FLIGHT_TITLE else p for p in out] + _async_panels(spec, sel, api)
    kind, _ = placement.api_demand(api)
    if kind == "nvidia":
        about = "From NVIDIA's DCGM exporter, where the cluster runs one; empty elsewhere."
        pool = placement.pool_for(api, spec)
        if pool is not None and pool.gpu_sharing is not None:
            # DCGM measures the device: every pod on a shared GPU reports the whole GPU's utilisation.
            about += (f" Pool {pool.name} shares each GPU between {pool.gpu_sharing.replicas_per_gpu} replicas "
                      f"({pool.gpu_sharing.strategy}): where the exporter maps a shared GPU to its pods, each pod's line is "
                      "the whole GPU, all of its sharers together.")
        out.append(
            PanelSpec(
                "GPU utilisation",
                "percent",
                (Query(f'avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{namespace="{spec.k8s_namespace}",pod=~"{api_pods(api)}"}})', "{{pod}}"),),
                about,
            )
        )
    return out


WINDOW = "2m"  # at least four scrapes of the chart's 30 s interval: rate() needs two


def _replicas(sel: str) -> PanelSpec:
    track = labels.prometheus_label(labels.TRACK)
    return PanelSpec(
        "Replicas",
        "short",
        (Query(f"count by ({track}) (up{{{sel}}} == 1)", f"{{{{{track}}}}}"),),
        "Pods of the API that Prometheus scrapes successfully, by track (stable, canary).",
    )


def _quantiles(histogram: str, sel: str) -> tuple[Query, ...]:
    return tuple(
        Query(f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{sel}}}[{WINDOW}])))", f"p{round(q * 100)}") for q in (0.5, 0.99)
    )


def _engine_panels(sel: str, api: Api) -> list[PanelSpec]:
    """vLLM's own metrics (its PrometheusStatLogger, and the HTTP counter of its API server): the engine
    API's pods carry the API's labels, so the same selector finds them."""
    running, waiting = autoscaling_targets(api.autoscaling)
    per_replica = f"count(up{{{sel}}} == 1)"
    return [
        PanelSpec(
            "Requests by finish reason and status",
            "reqps",
            (
                Query(f"sum by (finished_reason) (rate(vllm:request_success_total{{{sel}}}[{WINDOW}]))", "{{finished_reason}}"),
                Query(f"sum by (status) (rate(http_requests_total{{{sel}}}[{WINDOW}]))", "HTTP {{status}}"),
            ),
            "Requests the engine finished per second, by why they ended (stop, length, abort), and HTTP answers by status class.",
        ),
        PanelSpec(
            "Errors",
            "reqps",
            (
                Query(f'sum(rate(http_requests_total{{{sel},status="5xx"}}[{WINDOW}]))', "5xx answered"),
                Query(f'sum(rate(vllm:request_success_total{{{sel},finished_reason="abort"}}[{WINDOW}]))', "aborted"),
            ),
            "Server errors the engine's API server answered, and requests the engine aborted (a client gone, or an engine error).",
        ),
        PanelSpec(
            "Latency p50 / p99",
            "s",
            _quantiles("vllm:e2e_request_latency_seconds", sel),
            "End-to-end request latency inside the engine, arrival to last token.",
        ),
        PanelSpec(
            "Time to first token p50 / p99",
            "s",
            _quantiles("vllm:time_to_first_token_seconds", sel),
            "Arrival to the first generated token: queueing plus prefill.",
        ),
        PanelSpec(
            "Running and waiting per replica vs targets",
            "short",
            (
                Query(f"sum(vllm:num_requests_running{{{sel}}}) / {per_replica}", "running per replica"),
                Query(f"vector({running})", "running target"),
                Query(f"sum(vllm:num_requests_waiting{{{sel}}}) / {per_replica}", "waiting per replica"),
                Query(f"vector({waiting})", "waiting target"),
            ),
            "Sequences in the engine's batch and requests queued for it per replica: the two signals KEDA scales on, against their targets.",
        ),
        PanelSpec(
            "Tokens/s",
            "short",
            (
                Query(f"sum(rate(vllm:generation_tokens_total{{{sel}}}[{WINDOW}]))", "generated"),
                Query(f"sum(rate(vllm:prompt_tokens_total{{{sel}}}[{WINDOW}]))", "prompt (prefill)"),
            ),
            "Tokens generated, and prompt tokens processed, per second over all replicas.",
        ),
        PanelSpec(
            "KV cache usage",
            "percentunit",
            (Query(f"max by (pod) (vllm:kv_cache_usage_perc{{{sel}}})", "{{pod}}"),),
            "Share of the KV cache blocks in use per replica; near 1, new requests wait and running ones may be preempted.",
        ),
        _replicas(sel),
    ]


IN_FLIGHT_TITLE = "In flight per replica vs target"


def _in_flight(sel: str, api: Api) -> PanelSpec:
    return PanelSpec(
        IN_FLIGHT_TITLE,
        "short",
        (
            Query(f"sum(mlkit_requests_in_flight{{{sel}}}) / count(up{{{sel}}} == 1)", "in flight per replica"),
            Query(f"vector({api.autoscaling.target_in_flight})", "autoscaling target"),
        ),
        "Requests executing plus queued per replica: the signal KEDA scales on, against target_in_flight.",
    )


def _runtime_panels(sel: str, api: Api) -> list[PanelSpec]:
    window = WINDOW
    out = [
        PanelSpec(
            "Requests by status",
            "reqps",
            (Query(f"sum by (status) (rate(mlkit_requests_total{{{sel}}}[{window}]))", "{{status}}"),),
            "Requests answered per second, by HTTP status (503: shed by admission control).",
        ),
        PanelSpec(
            "Latency p50 / p99",
            "s",
            _quantiles("mlkit_request_duration_seconds", sel),
            "Time from arrival to response in the runtime, over every route.",
        ),
        _in_flight(sel, api),
        _replicas(sel),
        PanelSpec(
            "Batch size",
            "short",
            (
                Query(f"sum(rate(mlkit_batch_size_sum{{{sel}}}[{window}])) / sum(rate(mlkit_batch_size_count{{{sel}}}[{window}]))", "mean"),
                Query(f"histogram_quantile(0.99, sum by (le) (rate(mlkit_batch_size_bucket{{{sel}}}[{window}])))", "p99"),
            ),
            "Requests per predict_batch call (empty for predictors without predict_batch).",
        ),
        PanelSpec(
            "Errors",
            "reqps",
            (
                Query(f"sum(rate(mlkit_predictor_errors_total{{{sel}}}[{window}]))", "predictor raised"),
                Query(f"sum(rate(mlkit_requests_rejected_total{{{sel}}}[{window}]))", "shed (503)"),
                Query(f'sum(rate(mlkit_requests_total{{{sel},status=~"5.."}}[{window}]))', "5xx answered"),
            ),
            "Predictor exceptions, requests shed by admission control, and every 5xx answered.",
        ),
    ]
    if api.monitoring is not None:
        at = next(i for i, p in enumerate(out) if p.title == "Errors")
        errors = out[at]
        unmonitored = Query(f"sum(rate(mlkit_predictions_unmonitored_total{{{sel}}}[{window}]))", f"predictions without a usable {api.monitoring.key!r}")
        out[at] = PanelSpec(errors.title, errors.unit, (*errors.queries, unmonitored), errors.description + " With monitoring: predictions it could not read.")
        out.append(_monitoring_panel(sel, window, api.monitoring.key, api.monitoring.type))
    return out


def _async_panels(spec: Spec, sel: str, api: Api) -> list[PanelSpec]:
    """An async API's queue and workers (the panels above are its front's, and its workers' batches and errors)."""
    from .asyncapi import DEFAULT_TARGET_QUEUED, WORKER

    workers = f'{sel},{labels.prometheus_label(labels.TRACK)}="{WORKER}"'
    scaled = f'namespace="{spec.k8s_namespace}",scaledObject="{api.name}-{WORKER}"'
    target = api.autoscaling.target_queued or DEFAULT_TARGET_QUEUED
    wait = "mlkit_async_queue_wait_seconds"
    return [
        PanelSpec(
            "Queue depth",
            "short",
            (
                Query(f"sum({KEDA_METRIC}{{{scaled}}})", "queued + in flight (KEDA)"),
                Query(f"vector({target}) * count(up{{{workers}}} == 1)", "target for the workers up"),
            ),
            "Requests waiting or held by a worker, as KEDA's queue trigger reads them from the cloud (the value it scales "
            "the workers on, from the KEDA operator's metrics), against target_queued per worker up.",
        ),
        PanelSpec(
            "Time queued before a worker took it",
            "s",
            tuple(Query(f"histogram_quantile({q}, sum by (le) (rate({wait}_bucket{{{workers}}}[{WINDOW}])))", f"p{round(q * 100)}") for q in (0.5, 0.99)),
            "From submission to a worker taking the request (each attempt), from the workers: how far behind the queue runs. "
            "`mlkit status` shows the oldest queued request's age from the cloud's own metric.",
        ),
        PanelSpec(
            "Workers",
            "short",
            (Query(f"count(up{{{workers}}} == 1)", "workers up"),),
            "Worker pods Prometheus scrapes, scaled by KEDA on the queue's depth (none when the queue is empty and min_replicas is 0).",
        ),
        PanelSpec(
            "Async requests",
            "reqps",
            tuple(
                Query(f"sum(rate(mlkit_async_{name}_total{{{sel}}}[{WINDOW}]))", legend)
                for name, legend in (("submitted", "submitted"), ("completed", "completed"), ("retried", "attempt failed, retried"))
            ),
            "Requests the front queued, and what workers finished or released for another attempt.",
        ),
        PanelSpec(
            "Failed for good (dead-lettered)",
            "short",
            (Query(f"sum(increase(mlkit_async_failed_total{{{sel}}}[1h]))", "in the last hour"),),
            "Requests that failed every attempt: recorded failed and sent to the dead-letter queue.",
        ),
    ]


def _monitoring_panel(sel: str, window: str, key: str, kind: str) -> PanelSpec:
    """Prediction monitoring (`monitoring:`): the share of each predicted class, or the predicted values' quantiles and mean."""
    if kind == "classification":
        rate = f"sum by (class) (rate(mlkit_predicted_class_total{{{sel}}}[{window}]))"
        return PanelSpec(
            f"Predicted {key}: share by class",
            "percentunit",
            (Query(f"{rate} / scalar(sum(rate(mlkit_predicted_class_total{{{sel}}}[{window}])))", "{{class}}"),),
            f"Share of predictions per value of their {key!r} key; a shift here is drift.",
        )
    values = f"rate(mlkit_predicted_value_bucket{{{sel}}}[{window}])"
    return PanelSpec(
        f"Predicted {key}",
        "short",
        (
            Query(f"sum(rate(mlkit_predicted_value_sum{{{sel}}}[{window}])) / sum(rate(mlkit_predicted_value_count{{{sel}}}[{window}]))", "mean"),
            *(Query(f"histogram_quantile({q}, sum by (le) ({values}))", f"p{round(q * 100)}") for q in (0.1, 0.5, 0.9)),
        ),
        f"Distribution of the number in each prediction's {key!r} key (quantiles within histogram buckets); a shift here is drift.",
    )


def dashboard(spec: Spec) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.builders.timeseries import Panel
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    # Every panel reads the Prometheus that the dashboard's `datasource` variable picks.
    source = DataSourceRef(type_val="prometheus", uid="${datasource}")

    board = (
        Dashboard(f"mlkit: {spec.project}")
        .uid(f"mlkit-{spec.project}")
        .tags(["mlkit", spec.project])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for api in services(spec):
        board = board.with_row(Row(f"API {api.name}"))
        for p in panels(spec, api):
            panel = Panel().title(p.title).description(p.description).unit(p.unit).height(8).span(8).datasource(source)
            for ref, q in zip("ABCDEFGH", p.queries, strict=False):  # at most 8 queries a panel
                panel = panel.with_target(Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref))
            board = board.with_panel(panel)
    # Round-trip through the SDK's encoder into plain JSON types. The SDK leaves unset fields as null
    # and every panel id 0; Grafana wants fields absent rather than null, and ids unique.
    model: dict[str, Any] = _without_nulls(json.loads(json.dumps(board.build(), cls=JSONEncoder)))
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number
    return model


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def services(spec: Spec) -> list[Api]:
    """The APIs that serve requests: batch and task APIs export no serving metrics, so they get no row."""
    return [api for api in spec.apis if api.kind in ("realtime", "async")]


def render(spec: Spec, env: jinja2.Environment, header: str, shared: PurePosixPath, owner: dict[str, str]) -> dict[str, str]:
    """`infra/dashboards/<project>.json` and the sidecar ConfigMap beside the namespace."""
    if not services(spec):
        return {}
    text = json.dumps(dashboard(spec), indent=2, sort_keys=True) + "\n"
    configmap = env.get_template("k8s/dashboard.yaml.j2").render(
        name=f"mlkit-{spec.project}-dashboard", namespace=spec.k8s_namespace, labels={**owner, **SIDECAR_LABEL}, key=f"{spec.project}.json", json=text
    )
    return {str(DASHBOARDS / f"{spec.project}.json"): text, str(shared / "dashboard.yaml"): header + configmap}
