"""What the API server serves, found through API discovery, as `kubectl` finds it: `/api` and
`/apis` name the group-versions, and each group-version's resource list (`/api/v1`,
`/apis/autoscaling/v2`) names its kinds, their plural path segment and whether they are namespaced.

One `Discovery` belongs to one `Cluster`, that is to one command run: each of those documents is
fetched at most once per run, and only the resource lists of the group-versions asked about.
mlkit's own kinds keep their table in kinds.py (their order and paths need no round trip);
discovery is what lets `mlkit apply` take any object a team adds under infra/k8s, and tell before
anything is applied whether the cluster serves its kind at all.
"""

from __future__ import annotations

from collections.abc import Callable

from .kinds import Kind
from .manifests import KIND, NAME

# What may go into a request path: a resource list comes from the server and is data, not trust;
# the plural must be a name as Kubernetes spells names, the kind a kind as manifests spell them.
PLURAL = NAME


class Discovery:
    def __init__(self, get: Callable[[str], dict | None]):
        """`get(path)` answers a discovery document as a dict, or None where the server answers 404."""
        self._get = get
        self._groups: dict[str, list[str]] | None = None
        self._lists: dict[str, dict[str, Kind]] = {}

    def groups(self) -> dict[str, list[str]]:
        """Each served API group ("" for the core group) and its versions, the preferred one first."""
        if self._groups is None:
            groups = {"": [v for v in (self._get("/api") or {}).get("versions") or [] if isinstance(v, str)]}
            for group in (self._get("/apis") or {}).get("groups") or []:
                if not isinstance(group, dict) or not isinstance(group.get("name"), str):
                    continue
                versions: list[str] = [v["version"] for v in group.get("versions") or [] if isinstance(v, dict) and isinstance(v.get("version"), str)]
                preferred = (group.get("preferredVersion") or {}).get("version")
                if isinstance(preferred, str) and preferred in versions:
                    versions.remove(preferred)
                    versions.insert(0, preferred)
                groups[group["name"]] = versions
            self._groups = groups
        return self._groups

    def resources(self, api_version: str) -> dict[str, Kind]:
        """The kinds of one group-version by kind name (subresources such as pods/log left out); empty when not served."""
        if api_version not in self._lists:
            group, version = split(api_version)
            kinds: dict[str, Kind] = {}
            if version in self.groups().get(group, []):
                path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
                for entry in (self._get(path) or {}).get("resources") or []:
                    if not isinstance(entry, dict):
                        continue
                    name, kind = entry.get("name"), entry.get("kind")
                    if isinstance(name, str) and PLURAL.match(name) and isinstance(kind, str) and KIND.match(kind):
                        kinds.setdefault(kind, Kind(api_version, kind, name, namespaced=entry.get("namespaced") is True))
            self._lists[api_version] = kinds
        return self._lists[api_version]

    def find(self, api_version: str, kind: str) -> Kind | None:
        return self.resources(api_version).get(kind)

    def find_in_group(self, group: str, kind: str) -> Kind | None:
        """A kind by group alone (the preferred version first), for kinds recorded without their version."""
        for version in self.groups().get(group, []):
            found = self.find(f"{group}/{version}" if group else version, kind)
            if found is not None:
                return found
        return None

    def why_not(self, api_version: str, kind: str) -> str:
        """Why the cluster does not serve `kind` of `api_version`, in words a platform engineer acts on."""
        group, version = split(api_version)
        versions = self.groups().get(group)
        shown = group or "the core group"
        if versions is None:
            return f"the cluster does not serve the API group {group} (install the CRD or the add-on that brings {kind} first)"
        elsewhere = [v for v in versions if v != version and self.find(f"{group}/{v}" if group else v, kind)]
        if elsewhere:
            return f"the cluster serves {kind} as {', '.join(f'{group}/{v}' if group else v for v in elsewhere)}, not {api_version}; change apiVersion"
        if version not in versions:
            return f"the cluster does not serve {api_version} ({shown} serves {', '.join(versions) or 'no versions'})"
        return f"the cluster serves {api_version} but no kind {kind} in it; check the kind's spelling"


def split(api_version: str) -> tuple[str, str]:
    """("autoscaling", "v2") for "autoscaling/v2"; ("", "v1") for the core "v1"."""
    group, _, version = api_version.rpartition("/")
    return group, version
