"""A small Kubernetes API client over HTTP: server-side apply, list, get, delete, pod logs, and
the API server's service proxy. Every cluster-facing command goes through `Cluster`, so a local
API emulator exercises them all in tests.
"""

from __future__ import annotations

import builtins
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import certifi
import httpx

from ..errors import ToolError
from .discovery import Discovery
from .kinds import Kind, by_name, kind_of

FIELD_MANAGER = "mlkit"


class NotFound(Exception):
    def __init__(self, path: str, message: str = ""):
        super().__init__(path)
        self.message = message  # the server's reason, e.g. 'namespaces "monitoring" not found'


@dataclass
class Credentials:
    """How to reach one API server: its URL, a CA bundle or none (plain http), and a bearer token or client cert."""

    server: str
    name: str = "cluster"
    ca_file: str | None = None
    token: str | None = None
    client_cert: tuple[str, str] | None = None
    insecure: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    temp_files: list[str] = field(default_factory=list)  # PEM files written for the TLS client; Cluster.close() removes them

    def pem_file(self, data: bytes) -> str:
        """A private temporary file holding `data` (a CA, certificate or key from a kubeconfig or the cloud), for the TLS client."""
        handle = tempfile.NamedTemporaryFile(prefix="mlkit-", suffix=".pem", delete=False)
        with handle:
            handle.write(data)
        self.temp_files.append(handle.name)
        return handle.name


def _tls(creds: Credentials) -> ssl.SSLContext | bool:
    """The TLS settings of a connection: the cluster's CA (else certifi's, httpx's default) and a client certificate if any."""
    if creds.insecure:
        return False
    context = ssl.create_default_context(cafile=creds.ca_file or certifi.where())
    if creds.client_cert:
        context.load_cert_chain(*creds.client_cert)
    return context


class Cluster:
    def __init__(self, creds: Credentials, timeout: float = 30.0):
        self.creds = creds
        headers = {"Accept": "application/json", **creds.headers}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        self.http = httpx.Client(base_url=creds.server, headers=headers, verify=_tls(creds), timeout=timeout)
        # What the server serves, asked on first use and kept for the life of this client (one command run).
        self.discovery = Discovery(self._discovery_document)

    def close(self) -> None:
        self.http.close()
        for name in self.creds.temp_files:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        self.creds.temp_files.clear()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ToolError(f"cannot reach the Kubernetes API at {self.creds.server} ({self.creds.name}): {exc}") from None
        if response.status_code == 404:
            raise NotFound(path, _message(response))
        if response.status_code in (401, 403):
            raise ToolError(
                f"the Kubernetes API at {self.creds.server} refused {method} {path} ({response.status_code}): {_message(response)}; "
                "check that your cloud identity has access to the cluster (EKS access entries, GKE IAM)"
            )
        if response.status_code >= 400:
            raise ToolError(f"{method} {path} failed ({response.status_code}): {_message(response)}")
        return response

    def _discovery_document(self, path: str) -> dict | None:
        try:
            body = self._call("GET", path).json()
        except NotFound:
            return None
        except ValueError:
            raise ToolError(f"the Kubernetes API at {self.creds.server} answered GET {path} with something that is not JSON") from None
        if not isinstance(body, dict):
            raise ToolError(f"the Kubernetes API at {self.creds.server} answered GET {path} with something that is not a discovery document")
        return body

    def apply(self, obj: dict, kind: Kind | None = None) -> dict:
        """Server-side apply as field manager `mlkit`: creates or updates, and takes over fields it sets.

        `kind` is where the object lives (from discovery); without it, mlkit's own table says.
        """
        kind = kind or kind_of(obj)
        meta = obj["metadata"]
        response = self._call(
            "PATCH",
            kind.path(meta.get("namespace"), meta["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return response.json()

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict:
        return self._call("GET", kind.path(namespace, name)).json()

    def list(self, kind: Kind, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict]:
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        try:
            items = self._call("GET", kind.collection(namespace), params={"labelSelector": selector} if selector else None).json()["items"]
        except NotFound:
            return []  # the kind is not installed (e.g. no KEDA yet): nothing of it exists
        # The server filters by the selector; filtering again costs nothing and keeps lists exact.
        items = [i for i in items if all(i.get("metadata", {}).get("labels", {}).get(k) == v for k, v in (labels or {}).items())]
        for item in items:  # a built-in kind's list leaves these out of its items; callers get whole objects
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        try:
            self._call("DELETE", kind.path(namespace, name), params={"propagationPolicy": "Foreground"})
            return True
        except NotFound:
            return False

    def pod_logs(self, namespace: str, pod: str, container: str = "predictor", tail: int | None = 100) -> str:
        params: dict = {"container": container}
        if tail is not None:
            params["tailLines"] = tail
        try:
            return self._call("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params=params).text
        except NotFound:
            return ""

    def follow_logs(self, namespace: str, pod: str, container: str = "predictor", tail: int = 20) -> Iterator[str]:
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        params: dict[str, str | int] = {"container": container, "follow": "true", "tailLines": tail}
        with self.http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                raise ToolError(f"GET {path} failed ({response.status_code})")
            yield from response.iter_lines()

    def events(self, namespace: str, name: str) -> builtins.list[dict]:  # `list` in this class is Cluster.list
        items = self._call("GET", by_name("Event").collection(namespace), params={"fieldSelector": f"involvedObject.name={name}"}).json()["items"]
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]

    def proxy(self, namespace: str, service: str, path: str, body: bytes, headers: dict[str, str], timeout: float | None = None) -> httpx.Response:
        """POST to a Service through the API server, which reaches ClusterIP Services from outside the cluster.

        `timeout`: seconds to wait for the answer, when the client's default is too short (a request held while an API starts).
        """
        url = f"/api/v1/namespaces/{namespace}/services/{service}:http/proxy/{path.lstrip('/')}"
        try:
            return self.http.post(url, content=body, headers=headers, timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.HTTPError as exc:
            raise ToolError(f"cannot reach {service} through the Kubernetes API: {exc}") from None

    def proxy_get(self, namespace: str, service_port: str, path: str, params: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        """GET from a Service ("name:port") through the API server, whatever the status: the caller tells the
        Service's own answers from the API server's (no such Service, no endpoints, no right to the proxy)."""
        url = f"/api/v1/namespaces/{namespace}/services/{service_port}/proxy/{path.lstrip('/')}"
        try:
            return self.http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ToolError(f"cannot reach the Kubernetes API at {self.creds.server} ({self.creds.name}): {exc}") from None


def _message(response: httpx.Response) -> str:
    """The server's reason on one line (a Status's message, else the start of the body)."""
    try:
        body = response.json()
        text = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        text = None
    return " ".join(str(text or response.text).split())[:300]
