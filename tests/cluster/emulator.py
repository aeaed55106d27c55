"""A local Kubernetes API for tests: kmock's in-memory emulator on 127.0.0.1, in a thread.

kmock stores objects and serves create/get/list/patch/delete like an API server. Two things a real
API server does and kmock leaves to subclasses are added here, since mlkit relies on them:
server-side apply creates an absent object, and `metadata.generation` starts at 1 and grows when
the spec changes. And one thing a real API server does that kmock does not: the items of a built-in
kind's list come without kind and apiVersion. (kmock's lists ignore `labelSelector`; mlkit's client filters again anyway.)
API discovery serves what a real cluster with mlkit's add-ons serves: kmock's bundled resource lists
(the built-in kinds of a K3s server, gateway.networking.k8s.io included) plus KEDA's CRDs (and its HTTP add-on's); a test
installs another CRD with `Running.serve()`. As on a real server, a request for a resource the
server does not serve answers 404, and writing one does not store it. Unlike a real server, kmock
stores each version of a resource apart (an HPA written as autoscaling/v2 is not listed as
autoscaling/v1), so tests write the preferred version.
Tests play the controllers (a Deployment's status, pods, events, logs) by writing objects and
reactions themselves. The service proxy forwards to a URL a test names (`Running.proxy`), such as a
real server on loopback, and answers 503 as a real API server does when nothing listens there.

Not modelled (a pass here says nothing of these; docs/testing.md lists every stand-in's limits):
server-side apply is a dict merge, so a field removed from a manifest survives where a real server
would drop it, and there are no field managers, conflicts, defaulting, immutable fields or
finalizers; no controllers, admission or RBAC.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import importlib.resources
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import attrs
import httpx
import kmock
from aiohttp import web
from kmock._internal import enums

NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?$")
# Built-in API groups: a real API server leaves kind and apiVersion out of the items of their lists
# (custom resources keep them). kmock returns items as stored, so lists of these are trimmed.
# The API server's service proxy: /api/v1/namespaces/NS/services/NAME[:PORT]/proxy/PATH.
SERVICE_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)?$")
BUILT_IN_LIST = re.compile(r"^/(api/v1|apis/(apps|policy|networking\.k8s\.io|autoscaling)/v\w+)(/namespaces/[^/]+)?/[a-z]+$")


# KEDA's CRDs as its chart installs them (kedacore/charts, keda/templates/crds/, KEDA 2.x):
# group keda.sh, version v1alpha1, these plurals, kinds and scopes.
KEDA = {
    "keda.sh/v1alpha1/scaledobjects": ("ScaledObject", True),
    "keda.sh/v1alpha1/scaledjobs": ("ScaledJob", True),
    "keda.sh/v1alpha1/triggerauthentications": ("TriggerAuthentication", True),
    "keda.sh/v1alpha1/clustertriggerauthentications": ("ClusterTriggerAuthentication", False),
    # The KEDA HTTP add-on's (kedacore/http-add-on, config/crd/bases, v0.15.0): scale-to-zero APIs render InterceptorRoutes.
    "http.keda.sh/v1alpha1/httpscaledobjects": ("HTTPScaledObject", True),
    "http.keda.sh/v1beta1/interceptorroutes": ("InterceptorRoute", True),
}
VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")


def version_priority(version: str) -> tuple:
    """Kubernetes' version order, highest first: GA before beta before alpha, then the higher numbers (v2, v1, v1beta2, v1beta1, v1alpha1)."""
    match = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not match:
        return (3, version)
    major, stage, minor = match.groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0))


def not_found(message: str) -> web.Response:
    """A 404 as a real API server writes it."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "NotFound", "details": {}, "code": 404}
    return web.json_response(body, status=404)


@attrs.define(eq=False)
class Emulator(kmock.KubernetesEmulator):
    namespaces: dict = attrs.field(factory=dict, init=False)
    # (namespace, "service:port") -> the URL the service proxy forwards to (`Running.proxy`).
    proxies: dict = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock's load_bundled(), without its deprecated importlib call.
        self.resources.load_data(gzip.decompress(importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()))
        for resource, (kind, namespaced) in KEDA.items():
            self.serve(resource, kind, namespaced)

    def serve(self, resource: str, kind: str, namespaced: bool = True) -> None:
        """Serve a resource ("group/version/plural") as an installed CRD does."""
        self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, singular=kind.lower(), verbs=set(VERBS), subresources={"status"})

    async def __call__(self, raw_request):
        # kmock reads /api/v1/namespaces/NAME as the prefix of namespaced paths, never as the
        # Namespace object itself; namespaces are kept here instead.
        proxied = SERVICE_PROXY.match(raw_request.path)
        if proxied is not None and (proxied.group(1), proxied.group(2)) in self.proxies:
            return await self._proxy(raw_request, self.proxies[proxied.group(1), proxied.group(2)], proxied.group(3) or "/")
        match = NAMESPACE_PATH.match(raw_request.path)
        if match is None:
            response = await super().__call__(raw_request)
            if proxied is not None and response.status == 404:  # no target and no test reaction: a Service that is not there
                return not_found(f'services "{proxied.group(2).split(":")[0]}" not found')
            if raw_request.method == "GET" and response.status == 200 and raw_request.path == "/apis" and response.content_type == "application/json":
                body = json.loads(response.body)
                for group in body["groups"]:  # kmock picks any version as preferred; a real server the most stable, newest
                    group["versions"].sort(key=lambda v: version_priority(v["version"]))
                    group["preferredVersion"] = group["versions"][0]
                response = web.json_response(body)
            if raw_request.method == "GET" and response.status == 200 and raw_request.path == "/api/v1":
                body = json.loads(response.body)
                body["groupVersion"] = "v1"  # kmock writes "/v1" for the core group
                response = web.json_response(body)
            if raw_request.method == "GET" and response.status == 200 and BUILT_IN_LIST.match(raw_request.path):
                body = json.loads(response.body)
                for item in body.get("items", []):
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                response = web.json_response(body)
            return response
        name = match.group(1)
        if name is None:
            return web.json_response({"kind": "NamespaceList", "apiVersion": "v1", "items": list(self.namespaces.values())})
        if raw_request.method == "PATCH":
            body = json.loads(await raw_request.read())
            self.namespaces[name] = {**self.namespaces.get(name, {}), **body}
        elif raw_request.method == "DELETE":
            self.namespaces.pop(name, None)
            return web.json_response({"kind": "Status", "status": "Success"})
        if name not in self.namespaces:
            return not_found(f'namespaces "{name}" not found')
        return web.json_response(self.namespaces[name])

    async def _proxy(self, raw_request, target: str, path: str) -> web.Response:
        """Forward to the Service's target as the API server's proxy does; answer 503 as it does when nothing listens there."""
        headers = {k: v for k, v in raw_request.headers.items() if k.lower() in ("content-type", "accept")}
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                query = raw_request.rel_url.raw_query_string  # as sent: query_string is decoded
                url = target + path + (f"?{query}" if query else "")
                answer = await client.request(raw_request.method, url, content=await raw_request.read(), headers=headers)
        except httpx.HTTPError as exc:
            message = f"error trying to reach service: {exc}"
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "ServiceUnavailable", "code": 503}
            return web.json_response(body, status=503)
        content_type = answer.headers.get("content-type", "application/octet-stream")
        return web.Response(status=answer.status_code, body=answer.content, headers={"Content-Type": content_type})

    async def _handle(self, request):
        if request.resource is not None and request.resource.plural and request.resource not in self.resources:
            return not_found("the server could not find the requested resource")
        if request.resource is not None and request.name is not None and request.method == enums.method.PATCH:
            async with self._lock:
                object_key = (request.resource, request.namespace, request.name)
                data = copy.deepcopy(request.data) if isinstance(request.data, dict) else {}
                current = self._objects[object_key].raw if object_key in self._objects and not self._objects[object_key].deleted else None
                meta = data.setdefault("metadata", {})
                if current is None:
                    meta["generation"] = 1
                    self._objects[object_key] = data
                else:
                    generation = current.get("metadata", {}).get("generation", 1)
                    changed = any(k not in ("metadata", "status") and current.get(k) != v for k, v in data.items())
                    meta["generation"] = generation + 1 if changed else generation
                request.data.setdefault("metadata", {})["generation"] = meta["generation"]
        return await super()._handle(request)


@dataclass
class Running:
    emulator: Emulator
    url: str
    loop: asyncio.AbstractEventLoop

    def serve(self, resource: str, kind: str, namespaced: bool = True) -> None:
        """Install a CRD: the emulator serves `resource` ("group/version/plural") from now on."""
        self.loop.call_soon_threadsafe(self.emulator.serve, resource, kind, namespaced)
        # call_soon_threadsafe returns at once; wait until the loop has run it.
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        done.wait(5)

    def proxy(self, namespace: str, service_port: str, target: str | None) -> None:
        """Play the service proxy for a Service ("name:port"): forward to `target` (a base URL), or stop with None."""
        if target is None:
            self.emulator.proxies.pop((namespace, service_port), None)
        else:
            self.emulator.proxies[namespace, service_port] = target.rstrip("/")

    def requests(self) -> list[str]:
        """Every request served so far, as "METHOD PATH"."""
        return [f"{str(r.method.value).upper()} {r.url.path}" for r in list(self.emulator)]

    def objects(self, plural: str) -> list[dict]:
        if plural == "namespaces":
            return list(self.emulator.namespaces.values())
        return [o.raw for key, o in list(self.emulator.objects.items()) if key[0].plural == plural and not o.deleted]


def start() -> tuple[Running, Callable[[], None]]:
    """Start an emulator; the second value stops it and waits until its thread is gone."""
    ready: list = []
    stop = threading.Event()

    def run() -> None:
        async def main() -> None:
            async with Emulator() as emulator, kmock.Server(emulator) as server:
                ready.append(Running(emulator, str(server.url), asyncio.get_running_loop()))
                while not stop.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not ready:
        threading.Event().wait(0.02)

    def shutdown() -> None:
        # kmock patches aiohttp's resolver while a server runs; the next emulator may start only after.
        stop.set()
        thread.join(10)

    return ready[0], shutdown
