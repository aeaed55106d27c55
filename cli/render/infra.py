"""The render plan: every file mlkit writes for a spec, as text, computed without touching the disk.

Rendering is a pure function of the spec and the kit version, so the same spec gives byte-identical
files. Spec values go into `mlkit.auto.tfvars.json` and the `.tf` files stay nearly constant, which
keeps them fmt-clean by construction and keeps team edits and kit updates from colliding.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from .. import clouds, kit
from ..spec.schema import Spec
from . import asyncapi, automode, k8s, nodepools, wake
from .facts import Facts
from .jinja import HEADER, environment

CLUSTER = PurePosixPath("infra/terraform/cluster")
ADDONS = PurePosixPath("infra/terraform/addons")
TFVARS = "mlkit.auto.tfvars.json"
# Files whose whole content comes from the spec; mlkit overwrites them instead of merging.
MACHINE_OWNED = frozenset({str(CLUSTER / TFVARS), str(ADDONS / TFVARS)})



def render(spec: Spec, facts: Facts | None = None) -> dict[str, str]:
    """Relative path -> file content for everything under infra/."""
    facts = facts or Facts()
    files = k8s.render(spec, facts)
    cloud = clouds.of(spec)
    if spec.cluster.existing is None:
        # The network module comes first; an existing network leaves it out.
        modules = cloud.cluster_modules if spec.network.creates_vpc else cloud.cluster_modules[1:]
        if nodepools.enabled(spec):
            modules += ("karpenter",)
        elif automode.enabled(spec):
            modules += ("auto-mode",)
        # Each async API's queue (modules/async-queue): beside the cloud's own values, as the add-ons stack's queue names are.
        files |= _stack(spec, CLUSTER, "cluster", cloud.cluster_tfvars(spec) | asyncapi.cluster_tfvars(spec), modules)
    files |= _stack(spec, ADDONS, "addons", addons_tfvars(spec), cloud.addons_modules)
    return files


def _stack(spec: Spec, where: PurePosixPath, stack: str, tfvars: dict[str, Any], modules: tuple[str, ...]) -> dict[str, str]:
    """One Terraform root: its templates, the machine-owned tfvars, and copies of the kit modules it calls."""
    env = environment()
    existing = spec.cluster.existing
    context = {
        "spec": spec,
        "stack": stack,
        "context": existing is not None and existing.context,  # reached through a kubeconfig context
        "named": existing is None or bool(existing.name),  # looked up by name in the cloud
    }
    templates = {name: f"terraform/{spec.cloud}/{stack}/{name}.j2" for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf")}
    templates["backend.tf"] = f"terraform/{spec.cloud}/backend.tf.j2"
    if stack == "addons":
        templates["serving.tf"] = "terraform/serving.tf.j2"
        templates |= clouds.of(spec).addons_templates(named=bool(context["named"]))
    files: dict[str, str] = {}
    for name, template in templates.items():
        files[str(where / name)] = HEADER + "\n" + env.get_template(template).render(**context)
    files[str(where / TFVARS)] = json.dumps(tfvars, indent=2) + "\n"
    files[str(where / ".gitignore")] = env.get_template("terraform/gitignore.j2").render(**context)
    for module in modules:
        source = kit.terraform_modules(spec.cloud) / module
        for path in sorted(source.iterdir()):
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".tf":
                text = HEADER + "\n" + text
            files[str(where / "modules" / module / path.name)] = text
    return files


def addons_tfvars(spec: Spec) -> dict[str, Any]:
    """The add-ons stack's values: where the cluster is, and which add-ons the spec needs."""
    cloud, existing = clouds.of(spec), spec.cluster.existing
    out = cloud.addons_location(spec)
    if existing is not None and existing.context:
        out["kube_context"] = existing.context
    out["enable_gateway"] = any(api.canary for api in spec.apis)
    out["enable_http_add_on"] = any(wake.scales_to_zero(api) for api in spec.apis)
    return out | cloud.addons_features(spec) | asyncapi.addons_tfvars(spec)
