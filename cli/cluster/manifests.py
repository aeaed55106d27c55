"""Read the objects under infra/k8s: the manifests mlkit rendered, the team's edits to them, and any
object the team added there. Everything in those files may come from someone else's pull request, so
each document is checked before it goes anywhere near a request path, and a bad one is one line
naming its file (and document) instead of a traceback or a half-applied cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import regularfile
from ..errors import UserError
from ..render.k8s import owner_labels
from ..spec import yamlsafe
from ..spec.schema import Spec
from .kinds import KINDS, ORDER

# Every byte read is bounded: the largest rendered manifest (the dashboard's ConfigMap) is some 100 KiB.
MAX_BYTES = 16 * 2**20
SUFFIXES = (".yaml", ".yml", ".json")  # what `kubectl apply -f DIR` reads
API_VERSION = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$")
KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # DNS subdomain: what every kind accepts as a name
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # DNS label


@dataclass
class Manifest:
    """One object to apply and where it was written, for error lines."""

    file: str  # relative to the project root
    obj: dict

    @property
    def group(self) -> str:
        return self.obj["apiVersion"].rpartition("/")[0]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.obj["metadata"].get("namespace")


def load_manifests(root: Path, spec: Spec) -> list[Manifest]:
    """Every object under infra/k8s (the reviewed files, edits and additions included), labelled as mlkit's.

    mlkit's kinds come first in their apply order (what others refer to first), then every other
    kind in file order.
    """
    base = root / "infra" / "k8s"
    if not (base / "_shared" / "namespace.yaml").exists():
        raise UserError(f"{base} has no manifests; run `mlkit render` first and review what it writes")
    manifests: list[Manifest] = []
    seen: dict[tuple, str] = {}
    for file in sorted(p for p in base.rglob("*") if p.suffix in SUFFIXES and not p.is_dir()):
        rel = file.relative_to(root).as_posix()
        for where, obj in _objects(root, file, rel):
            _check(obj, where)
            meta = obj["metadata"]
            identity = (obj["apiVersion"].rpartition("/")[0], obj["kind"], meta.get("namespace"), meta["name"])
            if identity in seen:
                raise UserError(f"{where}: {obj['kind']} {meta['name']} is also in {seen[identity]}; keep one of them")
            seen[identity] = where
            meta.setdefault("labels", {}).update(owner_labels(spec))
            manifests.append(Manifest(rel, obj))
    return sorted(manifests, key=lambda m: ORDER.get((m.obj["apiVersion"], m.kind), len(KINDS)))


def _objects(root: Path, file: Path, rel: str) -> list[tuple[str, dict]]:
    """The documents of one file, each with the place an error names ("FILE", "FILE, document 2", ...)."""
    if file.is_symlink() and not file.resolve().is_relative_to(root.resolve()):
        raise UserError(f"{rel}: a symlink leading outside the project; mlkit applies only files inside it (replace the link with the file)")
    try:
        # infra/ may come from a pull request: a regular file (a FIFO would block the read for ever),
        # bounded in size, and YAML composed with bounds (yaml.safe_load_all expands a billion laughs).
        text = regularfile.read(file, MAX_BYTES).decode("utf-8")
    except regularfile.NotRegular:
        raise UserError(f"{rel}: not a regular file; infra/k8s holds YAML files (remove it)") from None
    except regularfile.TooLarge as exc:
        raise UserError(f"{rel}: {exc.size:,} bytes; a manifest file is at most {MAX_BYTES // 2**20} MiB") from None
    except UnicodeDecodeError:
        raise UserError(f"{rel}: not UTF-8 text; save it as UTF-8 YAML") from None
    except OSError as exc:
        raise UserError(f"{rel}: cannot be read ({exc.strerror})") from None
    try:
        docs = yamlsafe.load_all(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{rel}: not valid YAML ({_yaml_problem(exc)}); fix it") from None
    docs = [d for d in docs if d is not None]  # an empty document (a stray ---) is nothing
    out = []
    for n, doc in enumerate(docs, 1):
        where = rel if len(docs) == 1 else f"{rel}, document {n}"
        if isinstance(doc, dict) and doc.get("kind") == "List" and doc.get("apiVersion") == "v1":
            # `kubectl get -o yaml` writes a v1 List; kubectl applies its items, so does mlkit.
            items = doc.get("items")
            if not isinstance(items, list):
                raise UserError(f"{where}: a List without an items list; give it items or write one document per object")
            out += [(f"{where}, item {i}", item) for i, item in enumerate(items, 1)]
        else:
            out.append((where, doc))
    return out


def _check(obj, where: str) -> None:
    """One document is a Kubernetes object mlkit can apply: a mapping with apiVersion, kind and a usable metadata.name."""
    if not isinstance(obj, dict):
        what = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(obj), "a scalar")
        raise UserError(f"{where}: {what}, not a Kubernetes object; write a mapping with apiVersion, kind and metadata.name (one object per --- document)")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not API_VERSION.match(api_version):
        found = "has no apiVersion" if api_version is None else f"has apiVersion {api_version!r}, which is not GROUP/VERSION"
        raise UserError(f"{where}: {found}; set it (e.g. apiVersion: autoscaling/v2)")
    if not isinstance(kind, str) or not KIND.match(kind):
        found = "has no kind" if kind is None else f"has kind {kind!r}, which is not a kind name"
        raise UserError(f"{where}: {found}; set it (e.g. kind: HorizontalPodAutoscaler)")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise UserError(f"{where}: {kind} has no metadata mapping; set metadata.name")
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not NAME.match(name):
        found = "has no metadata.name" if name is None else f"has metadata.name {name!r}, which is not a Kubernetes name"
        raise UserError(f"{where}: {kind} {found}; set one of lowercase letters, digits, '-' and '.' (generateName does not work with apply)")
    namespace = meta.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > 63 or not NAMESPACE.match(namespace)):
        raise UserError(f"{where}: {kind} {name} has metadata.namespace {namespace!r}, which is not a namespace name; fix it or leave it out")
    if meta.get("labels") is None:
        meta.pop("labels", None)
    elif not isinstance(meta["labels"], dict) or not all(isinstance(v, str) for v in meta["labels"].values()):
        raise UserError(f"{where}: {kind} {name} has metadata.labels that are not a mapping of strings; quote the values")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, on one line (PyYAML's own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
