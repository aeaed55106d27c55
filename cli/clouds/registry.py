"""A registry that speaks the Docker Registry HTTP API v2 (Artifact Registry, a local registry in
tests): whether it holds an image, with the token handshake docker uses. A cloud whose registry has
its own API (ECR) asks that instead."""

from __future__ import annotations

from ..errors import ToolError


def registry_has(image: str, user: str, password: str, scheme: str = "https") -> bool:
    """Whether a registry holds `host/name:tag`, through the Docker Registry v2 API with its token
    handshake (a 401 names the realm that trades the login for a bearer token), as docker does."""
    import httpx

    host, _, rest = image.partition("/")
    name, _, tag = rest.rpartition(":")
    url = f"{scheme}://{host}/v2/{name}/manifests/{tag}"
    manifests = (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    accept = {"Accept": ", ".join(manifests)}
    try:
        with httpx.Client(timeout=30) as http:
            response = http.head(url, headers=accept, auth=(user, password))
            challenge = response.headers.get("www-authenticate", "")
            if response.status_code == 401 and challenge.lower().startswith("bearer "):
                fields = dict(part.split("=", 1) for part in challenge[7:].split(","))
                fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
                params = {k: fields[k] for k in ("service", "scope") if k in fields}
                grant = http.get(fields["realm"], params=params, auth=(user, password))
                grant.raise_for_status()
                token = grant.json().get("token") or grant.json().get("access_token")
                response = http.head(url, headers=accept | {"Authorization": f"Bearer {token}"})
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ToolError(f"asking {host} whether it has {image}: {exc}") from None
    if response.status_code in (200, 404):
        return response.status_code == 200
    raise ToolError(f"asking {host} whether it has {image}: HTTP {response.status_code}")
