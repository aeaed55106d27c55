"""Put the manifests under infra/k8s on a cluster: server-side apply, prune what the spec dropped,
and wait for the rollouts, showing why when one does not finish."""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import labels
from ..errors import ToolError, UserError, shown
from ..render.k8s import owner_labels
from ..spec.schema import Spec
from .client import Cluster, NotFound
from .kinds import KINDS, Kind, by_name
from .manifests import NAMESPACE, Manifest, load_manifests

__all__ = ["Applied", "apply", "diagnose", "load_manifests", "remove", "resolve", "rollout_state", "wait"]


@dataclass
class Applied:
    changed_deployments: list[dict]
    pruned: list[tuple[str, str | None, str]]
    new_keys: dict[str, str]


# The kinds beyond mlkit's table applied to a project, and the namespaces beyond its own they went
# to, recorded on the project's Namespace: pruning finds a team's HPA after its file is deleted
# only where it knows to look (kubectl's ApplySet records the same on its parent object).
KINDS_NOTE = labels.APPLIED_KINDS
NAMESPACES_NOTE = labels.APPLIED_NAMESPACES
KNOWN = {(k.api_version.rpartition("/")[0], k.kind) for k in KINDS}
GROUP_KIND = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\.?([a-z0-9.-]*)$")


@dataclass
class Target:
    """A manifest and where it lives on this cluster."""

    manifest: Manifest
    kind: Kind

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        return key(self.manifest.obj)


def key(obj: dict) -> tuple[str, str, str | None, str]:
    return obj["apiVersion"].rpartition("/")[0], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def resolve(cluster: Cluster, spec: Spec, manifests: list[Manifest]) -> list[Target]:
    """Where each object lives, from API discovery; a kind the server does not serve, or a namespace
    that does not exist, is one error line naming the file, before anything is applied."""
    targets = []
    creating = {m.name for m in manifests if m.obj["apiVersion"] == "v1" and m.kind == "Namespace"}
    checked: set[str] = {spec.k8s_namespace} | creating
    for m in manifests:
        kind = cluster.discovery.find(m.obj["apiVersion"], m.kind)
        if kind is None:
            raise UserError(f"{m.file}: {m.kind} ({m.obj['apiVersion']}) is not served by the cluster: "
                            f"{cluster.discovery.why_not(m.obj['apiVersion'], m.kind)}")
        meta = m.obj["metadata"]
        if not kind.namespaced:
            meta.pop("namespace", None)
        else:
            namespace = meta.setdefault("namespace", spec.k8s_namespace)
            if namespace not in checked:
                try:
                    cluster.get(by_name("Namespace"), None, namespace)
                except NotFound:
                    raise UserError(
                        f"{m.file}: {m.kind} {m.name} goes to namespace {namespace}, which the cluster does not have; "
                        f"add a Namespace for it under infra/k8s or leave metadata.namespace out (then it goes to {spec.k8s_namespace})"
                    ) from None
                checked.add(namespace)
        targets.append(Target(m, kind))
    return targets


def apply(cluster: Cluster, spec: Spec, manifests: list[Manifest], say: Callable[[str], None], prune: bool = True) -> Applied:
    ns = spec.k8s_namespace
    targets = resolve(cluster, spec, manifests)
    deployments = by_name("Deployment")
    before = {d["metadata"]["name"]: d["metadata"].get("generation") for d in cluster.list(deployments, ns, owner_labels(spec))}
    recorded_kinds, recorded_namespaces = _recorded(cluster, spec)
    kinds_now, namespaces_now = _extras(spec, targets)
    # While applying, the record holds both the old and the new extras: a run cut short still knows where to prune.
    _note(targets, spec, recorded_kinds | kinds_now, recorded_namespaces | namespaces_now)
    changed = []
    new_keys: dict[str, str] | None = None
    for target in targets:
        obj = target.manifest.obj
        if new_keys is None and obj["kind"] != "Namespace":
            new_keys = _ensure_api_keys(cluster, spec)  # the namespace exists by now, the Deployments do not yet
        try:
            result = cluster.apply(obj, target.kind)
        except ToolError as exc:
            raise ToolError(f"{target.manifest.file}: {exc}") from None
        except NotFound as exc:
            raise ToolError(f"{target.manifest.file}: the cluster answered 404 to {obj['kind']} {obj['metadata']['name']} ({exc.message})") from None
        if obj["kind"] == "Deployment" and obj["metadata"]["namespace"] == ns:  # rollouts are awaited in the project's namespace
            name = obj["metadata"]["name"]
            if before.get(name) != result["metadata"].get("generation"):
                changed.append(result)
    if new_keys is None:
        new_keys = _ensure_api_keys(cluster, spec)
    say(f"applied {len(targets)} objects to namespace {ns} ({len(changed)} deployments changed)")
    if not prune:
        return Applied(changed, [], new_keys)
    extra = _kinds(cluster, recorded_kinds | kinds_now)
    pruned = _prune(cluster, spec, {t.key for t in targets}, extra, recorded_namespaces | namespaces_now, say)
    if (recorded_kinds, recorded_namespaces) != (kinds_now, namespaces_now):
        _note(targets, spec, kinds_now, namespaces_now)  # pruned: the record shrinks to what is applied now
        for target in targets:
            if target.manifest.obj["kind"] == "Namespace" and target.manifest.name == ns:
                cluster.apply(target.manifest.obj, target.kind)
    return Applied(changed, pruned, new_keys)


def _extras(spec: Spec, targets: list[Target]) -> tuple[set[str], set[str]]:
    """The kinds beyond mlkit's table ("Kind.group", as kubectl's ApplySet writes them) and the namespaces beyond the project's."""
    kinds = {f"{t.kind.kind}.{t.manifest.group}".rstrip(".") for t in targets if (t.manifest.group, t.kind.kind) not in KNOWN}
    namespaces = {t.manifest.namespace for t in targets if t.kind.namespaced and t.manifest.namespace != spec.k8s_namespace}
    return kinds, {n for n in namespaces if n}


def _recorded(cluster: Cluster, spec: Spec) -> tuple[set[str], set[str]]:
    """What earlier runs recorded on the project's Namespace (malformed entries are ignored: the annotation is data)."""
    try:
        notes = cluster.get(by_name("Namespace"), None, spec.k8s_namespace).get("metadata", {}).get("annotations") or {}
    except NotFound:
        return set(), set()
    kinds = {k for k in str(notes.get(KINDS_NOTE, "")).split(",") if GROUP_KIND.match(k)}
    namespaces = {n for n in str(notes.get(NAMESPACES_NOTE, "")).split(",") if NAMESPACE.match(n)}
    return kinds, namespaces


def _note(targets: list[Target], spec: Spec, kinds: set[str], namespaces: set[str]) -> None:
    for target in targets:
        obj = target.manifest.obj
        if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1" and obj["metadata"]["name"] == spec.k8s_namespace:
            notes = obj["metadata"].setdefault("annotations", {})
            for name, values in ((KINDS_NOTE, kinds), (NAMESPACES_NOTE, namespaces)):
                if values:
                    notes[name] = ",".join(sorted(values))
                else:
                    notes.pop(name, None)


def _kinds(cluster: Cluster, recorded: set[str]) -> list[Kind]:
    """The recorded extra kinds the cluster still serves (a removed CRD leaves nothing of its kind to prune)."""
    found = []
    for entry in sorted(recorded):
        match = GROUP_KIND.match(entry)
        kind = cluster.discovery.find_in_group(match.group(2), match.group(1)) if match else None
        if kind is not None:
            found.append(kind)
    return found


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
            "metadata": {"name": name, "namespace": spec.k8s_namespace, "labels": {**owner_labels(spec), labels.API: api.name}},
            "type": "Opaque",
            "data": {"keys": base64.b64encode((value + "\n").encode()).decode()},
        })
        created[api.name] = value
    return created


def _prune(cluster: Cluster, spec: Spec, keep: set, extra: list[Kind], namespaces: set[str], say: Callable[[str], None]) -> list:
    """Delete mlkit's objects (those with its owner labels) that infra/k8s no longer has; nothing else is looked at."""
    pruned = []
    for kind in extra[::-1] + KINDS[::-1]:
        if kind.kind in ("Namespace", "Secret"):
            continue  # the namespace holds everything; API-key Secrets go with `mlkit delete`
        for obj in _owned(cluster, spec, kind, namespaces, owner_labels(spec)):
            k = key(obj)
            if k not in keep:
                cluster.delete(kind, k[2], k[3])
                pruned.append(k[1:])
                say(f"pruned {kind.kind} {k[3]}: no longer under infra/k8s")
    return pruned


def _owned(cluster: Cluster, spec: Spec, kind: Kind, namespaces: set[str], selector: dict[str, str]) -> list[dict]:
    if not kind.namespaced:
        # Cluster-wide objects carry the project's labels but may belong to the same project deployed to
        # another namespace (`namespace:`: staging beside prod on one cluster): a PersistentVolume is this
        # deployment's only when its claim is in this namespace, a Namespace only when it is one of ours.
        found = cluster.list(kind, None, selector)
        if kind.kind == "PersistentVolume":
            return [o for o in found if (o.get("spec", {}).get("claimRef") or {}).get("namespace", spec.k8s_namespace) == spec.k8s_namespace]
        if kind.kind == "Namespace":
            return [o for o in found if o["metadata"]["name"] in {spec.k8s_namespace, *namespaces}]
        return found
    return [obj for ns in [spec.k8s_namespace, *sorted(namespaces - {spec.k8s_namespace})] for obj in cluster.list(kind, ns, selector)]


def remove(cluster: Cluster, spec: Spec, say: Callable[[str], None], api: str | None = None) -> list:
    """Delete mlkit's objects of the project (or of one API), API-key Secrets, the kinds teams added, and the namespace."""
    selector = owner_labels(spec) | ({labels.API: api} if api else {})
    kinds, namespaces = _recorded(cluster, spec)
    removed = []
    for kind in _kinds(cluster, kinds)[::-1] + KINDS[::-1]:
        if kind.kind == "Namespace" and api:
            continue
        for obj in _owned(cluster, spec, kind, namespaces, selector):
            name = obj["metadata"]["name"]
            if cluster.delete(kind, obj["metadata"].get("namespace") if kind.namespaced else None, name):
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
            return False, f"failed: {shown(condition.get('message', 'progress deadline exceeded'), 300)}"
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
            # What the cluster and the pod say is shown escaped: an event or log line can hold terminal escapes.
            out.append(f"  event {shown(event.get('type', ''), 40)} {shown(event.get('reason', ''), 80)}: {shown(event.get('message', ''), 300)}")
        for container in ("fetch-model", "predictor"):
            text = cluster.pod_logs(spec.k8s_namespace, name, container, tail=lines).rstrip()
            if text:
                out.append(f"  last log lines of {container}:")
                out += [f"    {shown(line, 300)}" for line in text.splitlines()[-lines:]]
    return "\n".join(out) or f"no pods of {deployment} yet: check the ReplicaSet events (quota, admission, pod security)"
