"""The Kubernetes kinds mlkit renders and reads, where each lives in the API, and their apply order.

A fixed table for mlkit's own kinds: it gives their order, and lets the commands that only read
(status, logs, predict) make one round trip per request. Kinds a team adds under infra/k8s are
found through API discovery instead (discovery.py), as `mlkit apply` checks every kind there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str | None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def path(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


# In apply order: what others refer to first (namespace, identity, config), what refers to them last.
KINDS = [
    Kind("v1", "Namespace", "namespaces", namespaced=False),
    Kind("gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", namespaced=False),
    # Karpenter (node_provisioning: karpenter): the node class a NodePool names, then the NodePool; both before
    # the Deployments whose pending pods they provision nodes for.
    Kind("karpenter.k8s.aws/v1", "EC2NodeClass", "ec2nodeclasses", namespaced=False),
    Kind("eks.amazonaws.com/v1", "NodeClass", "nodeclasses", namespaced=False),  # EKS Auto Mode's node class
    Kind("karpenter.sh/v1", "NodePool", "nodepools", namespaced=False),
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "ConfigMap", "configmaps"),
    # model_access: mount on EKS: the volume, then the claim bound to it, then the pods that use it.
    Kind("v1", "PersistentVolume", "persistentvolumes", namespaced=False),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("v1", "Service", "services"),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("apps/v1", "Deployment", "deployments"),
    # A `kind: task` API's schedule: after its ServiceAccount and ConfigMap, which its runs' pods use.
    Kind("batch/v1", "CronJob", "cronjobs"),
    # Before the ScaledObject whose external-push trigger names it (the add-on's scaler looks it up).
    Kind("http.keda.sh/v1beta1", "InterceptorRoute", "interceptorroutes"),
    # An async API's workers: the identity KEDA reads the queue with, before the ScaledObject that names it.
    Kind("keda.sh/v1alpha1", "TriggerAuthentication", "triggerauthentications"),
    Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
    Kind("gateway.networking.k8s.io/v1", "Gateway", "gateways"),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
]
READ_ONLY = [Kind("v1", "Pod", "pods"), Kind("v1", "Event", "events")]
# Created by `mlkit job submit`, not rendered into infra/: apply neither writes nor prunes them.
JOB = Kind("batch/v1", "Job", "jobs")
BY_KIND = {(k.api_version, k.kind): k for k in KINDS + READ_ONLY + [JOB]}
ORDER = {(k.api_version, k.kind): i for i, k in enumerate(KINDS)}


def kind_of(obj: dict) -> Kind:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in BY_KIND:
        known = ", ".join(sorted(k.kind for k in KINDS))
        raise KeyError(f"{obj.get('kind')} ({obj.get('apiVersion')}) is not a kind mlkit applies (known: {known})")
    return BY_KIND[key]


def by_name(kind: str) -> Kind:
    return next(k for k in KINDS + READ_ONLY if k.kind == kind)
