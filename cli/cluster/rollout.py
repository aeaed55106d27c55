"""Put the manifests under infra/k8s on a cluster: server-side apply, prune what the spec dropped,
and wait for the rollouts, showing why when one does not finish."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ToolError, UserError
from ..render.k8s import owner_labels
from ..spec import Spec
from .client import Cluster, NotFound
from .kinds import KINDS, ORDER, by_name, kind_of


def load_manifests(root: Path, spec: Spec) -> list[dict]:
    """Every object under infra/k8s (the reviewed files, edits included), in apply order, labelled as mlkit's."""
    base = root / "infra" / "k8s"
    if not (base / "_shared" / "namespace.yaml").exists():
        raise UserError(f"{base} has no manifests; run `mlkit render` first and review what it writes")
    objects = []
    for file in sorted(base.rglob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as exc:
            raise UserError(f"{file.relative_to(root)}: not valid YAML ({exc}); fix it or run `mlkit render` to restore it") from None
        for doc in docs:
            try:
                kind_of(doc)
            except KeyError as exc:
                raise UserError(f"{file.relative_to(root)}: {exc.args[0]}") from None
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(owner_labels(spec))
            objects.append(doc)
    return sorted(objects, key=lambda o: ORDER[(o["apiVersion"], o["kind"])])


def key(obj: dict) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


@dataclass
class Applied:
    changed_deployments: list[dict]
    pruned: list[tuple[str, str | None, str]]
    new_keys: dict[str, str]


def apply(cluster: Cluster, spec: Spec, objects: list[dict], say: Callable[[str], None], prune: bool = True) -> Applied:
    ns = spec.k8s_namespace
    deployments = by_name("Deployment")
    before = {d["metadata"]["name"]: d["metadata"].get("generation") for d in cluster.list(deployments, ns, owner_labels(spec))}
    new_keys = _ensure_api_keys(cluster, spec)
    changed = []
    for obj in objects:
        result = cluster.apply(obj)
        if obj["kind"] == "Deployment":
            name = obj["metadata"]["name"]
            if before.get(name) != result["metadata"].get("generation"):
                changed.append(result)
    say(f"applied {len(objects)} objects to namespace {ns} ({len(changed)} deployments changed)")
    pruned = _prune(cluster, spec, {key(o) for o in objects}, say) if prune else []
    return Applied(changed, pruned, new_keys)


def _ensure_api_keys(cluster: Cluster, spec: Spec) -> dict[str, str]:
    """A first key for each API that wants keys and has no Secret yet; keys are never overwritten."""
    created = {}
    secret_kind = by_name("Secret")
    for api in spec.apis:
        if not api.api_keys:
            continue
        name = f"{api.name}-api-keys"
        try:
            cluster.get(secret_kind, spec.k8s_namespace, name)
            continue
        except NotFound:
            pass
        value = "mlk_" + secrets.token_urlsafe(24)
        cluster.apply({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": spec.k8s_namespace, "labels": {**owner_labels(spec), "mlkit.dev/api": api.name}},
            "type": "Opaque",
            "data": {"keys": base64.b64encode((value + "\n").encode()).decode()},
        })
        created[api.name] = value
    return created


def _prune(cluster: Cluster, spec: Spec, keep: set, say: Callable[[str], None]) -> list:
    pruned = []
    for kind in reversed(KINDS):
        if kind.kind in ("Namespace", "Secret"):
            continue  # the namespace holds everything; API-key Secrets go with `mlkit delete`
        for obj in cluster.list(kind, spec.k8s_namespace if kind.namespaced else None, owner_labels(spec)):
            k = key(obj)
            if k not in keep:
                cluster.delete(kind, k[1], k[2])
                pruned.append(k)
                say(f"pruned {kind.kind} {k[2]}: no longer in mlkit.yaml")
    return pruned


def remove(cluster: Cluster, spec: Spec, say: Callable[[str], None], api: str | None = None) -> list:
    """Delete mlkit's objects of the project (or of one API), API-key Secrets and the namespace included."""
    labels = owner_labels(spec) | ({"mlkit.dev/api": api} if api else {})
    removed = []
    for kind in reversed(KINDS):
        if kind.kind == "Namespace" and api:
            continue
        for obj in cluster.list(kind, spec.k8s_namespace if kind.namespaced else None, labels):
            name = obj["metadata"]["name"]
            if cluster.delete(kind, obj["metadata"].get("namespace"), name):
                removed.append((kind.kind, name))
                say(f"deleted {kind.kind} {name}")
    return removed


def rollout_state(deployment: dict) -> tuple[bool, str]:
    """Whether a Deployment has rolled out, and a one-line account (the rules of `kubectl rollout status`)."""
    spec, status, meta = deployment.get("spec", {}), deployment.get("status", {}), deployment["metadata"]
    want = spec.get("replicas", 1)
    updated, ready, total = status.get("updatedReplicas", 0), status.get("availableReplicas", 0), status.get("replicas", 0)
    for condition in status.get("conditions", []):
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, f"failed: {condition.get('message', 'progress deadline exceeded')}"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "waiting for the controller to see the new version"
    if want == 0:
        return True, "scaled to zero"
    if updated < want:
        return False, f"{updated}/{want} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas terminating"
    if ready < updated:
        return False, f"{ready}/{want} updated replicas available"
    return True, f"{ready}/{want} ready"


def wait(cluster: Cluster, spec: Spec, deployments: list[dict], timeout_s: float, say: Callable[[str], None], poll_s: float = 2.0) -> None:
    kind = by_name("Deployment")
    pending = {d["metadata"]["name"] for d in deployments}
    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        for name in sorted(pending):
            done, line = rollout_state(cluster.get(kind, spec.k8s_namespace, name))
            if line != last.get(name):
                say(f"  {name}: {line}")
                last[name] = line
            if done:
                pending.discard(name)
            elif line.startswith("failed"):
                raise ToolError(f"rollout of {name} failed: {line}\n" + diagnose(cluster, spec, name))
        if pending and time.monotonic() > deadline:
            report = "\n".join(diagnose(cluster, spec, name) for name in sorted(pending))
            raise ToolError(f"rollout of {', '.join(sorted(pending))} did not finish in {timeout_s:g} s\n{report}")
        if pending:
            time.sleep(poll_s)


def diagnose(cluster: Cluster, spec: Spec, deployment: str, events: int = 5, lines: int = 20) -> str:
    """The failing pods of a Deployment: their last events and last log lines."""
    out = []
    selector = cluster.get(by_name("Deployment"), spec.k8s_namespace, deployment)["spec"]["selector"]["matchLabels"]
    for pod in cluster.list(by_name("Pod"), spec.k8s_namespace, selector):
        name = pod["metadata"]["name"]
        statuses = pod.get("status", {}).get("containerStatuses", [])
        if statuses and all(s.get("ready") for s in statuses):
            continue
        phase = pod.get("status", {}).get("phase", "Unknown")
        out.append(f"pod {name} ({phase}):")
        for event in cluster.events(spec.k8s_namespace, name)[-events:]:
            out.append(f"  event {event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}")
        for container in ("fetch-model", "predictor"):
            text = cluster.pod_logs(spec.k8s_namespace, name, container, tail=lines).rstrip()
            if text:
                out.append(f"  last log lines of {container}:")
                out += [f"    {line}" for line in text.splitlines()[-lines:]]
    return "\n".join(out) or f"no pods of {deployment} yet: check the ReplicaSet events (quota, admission, pod security)"
