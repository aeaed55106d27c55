"""The APIs step of `mlkit apply`: models uploaded, images in the registry, deploy facts recorded
and rendered into the manifests, then the manifests applied, pruned and rolled out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import clouds
from ..errors import ToolError, UserError
from ..render import facts as facts_mod
from ..render import runtime_view
from ..spec.schema import Spec
from . import images, uploads

Say = Callable[[str], None]


@dataclass
class Report:
    uploaded: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)
    rolled_out: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    new_keys: dict[str, str] = field(default_factory=dict)  # never printed to stdout: apply drops it from --json
    key_files: dict[str, str] = field(default_factory=dict)  # API -> the 0600 file its new key was written to
    revisions: dict[str, int] = field(default_factory=dict)  # API -> the revision this deploy recorded (unchanged APIs: none)


SECRETS_DIR = ".mlkit/secrets"


def save_key(root: Path, api: str, key: str) -> str:
    """Write a new API key to .mlkit/secrets/<api>.key, mode 0600 from its first byte; its own
    .gitignore keeps the folder out of commits even in projects whose .mlkit/.gitignore predates it."""
    from .. import projectfs

    projectfs.make_dirs(root, SECRETS_DIR)
    if projectfs.read_text(root, f"{SECRETS_DIR}/.gitignore") is None:
        projectfs.write_text(root, f"{SECRETS_DIR}/.gitignore", "# new API keys, written by mlkit apply: never commit them\n*\n")
    rel = f"{SECRETS_DIR}/{api}.key"
    projectfs.write_text(root, rel, key + "\n", mode=0o600)
    return rel


def cluster_outputs(root: Path) -> dict:
    """The cluster stack's outputs (account, bucket, registry), or {} where mlkit made no cluster."""
    from ..render.infra import CLUSTER
    from ..terraform.runner import Terraform

    workdir = root / CLUSTER
    if not (workdir / "main.tf").exists():
        return {}
    try:
        return Terraform(workdir).output()
    except ToolError:
        return {}


def prepare(root: Path, spec: Spec, say: Say, report: Report) -> facts_mod.Facts:
    """Upload local models and make sure every API's image is in the registry; record both."""
    facts = facts_mod.load(root)
    # apply deploys the project as written: a rollback's pins end here (history keeps the rollback).
    facts.pins.clear()
    outputs = cluster_outputs(root)
    facts.aws_account_id = clouds.of(spec).account(outputs)
    _upload_models(root, spec, facts, outputs, say, report)
    _ensure_images(root, spec, facts, say, report)
    facts_mod.save(root, facts)
    return facts


def _upload_models(root: Path, spec: Spec, facts: facts_mod.Facts, outputs: dict, say: Say, report: Report) -> None:
    wanted: list[tuple[str, str, str | None]] = []
    for i, api in enumerate(spec.apis):
        wanted.append((f"apis[{i}].model", api.name, api.model))
        if api.canary and api.canary.model:
            wanted.append((f"apis[{i}].canary.model", f"{api.name}-canary", api.canary.model))
    # Local folders only: s3:// and gs:// models are already where the pods fetch them from.
    local = [(where, name, folder) for where, name, folder in wanted if folder and "://" not in folder]
    if not local:
        return
    bucket = outputs.get("model_bucket_name")
    if not bucket:
        raise UserError(
            f"mlkit.yaml: {local[0][0]} is a local folder, but there is no model bucket to upload it to "
            "(the cluster stack makes one: run `mlkit apply --only cluster`; with cluster.existing, upload the model yourself and set model: s3://... or gs://...)"
        )
    for where, name, folder in local:
        say(f"model of {name}: {folder}")
        result = uploads.upload(spec.cloud, bucket, name, root / folder, f"mlkit.yaml: {where}", say, root=root)
        say(f"  {result.uri}: {result.uploaded} uploaded, {result.skipped} unchanged")
        facts.models[name] = result.uri
        report.uploaded[name] = result.uri


def _ensure_images(root: Path, spec: Spec, facts: facts_mod.Facts, say: Say, report: Report) -> None:
    problem: str | None = None
    checked_docker = False
    for api in images.built(spec.apis):  # engine APIs run their engine's published image
        ctx = images.context(root, spec, api)
        tag = ctx.tag
        ref = runtime_view.image_ref(spec, api.name, tag, facts.aws_account_id)
        report.images[api.name] = ref
        if in_registry(spec, ref, api.name, tag):
            say(f"image of {api.name}: {ref} is in the registry")
            facts.images[api.name] = tag
            continue
        if not checked_docker:
            problem, checked_docker = images.docker_problem(), True
        if problem:
            raise UserError(
                f"the image of {api.name} ({ref}) is not in the registry and cannot be built here: {problem}. "
                f"Build it where Docker runs: `mlkit build {api.name}` (or `mlkit build --context-dir DIR` and "
                f"`docker buildx build --push -t {ref} DIR/{api.name}` in CI), "
                "then run `mlkit apply --only apis` again"
            )
        say(f"image of {api.name}: building {ref}")
        push(root, spec, ctx, ref)
        facts.images[api.name] = tag
        report.built.append(api.name)


def push(root: Path, spec: Spec, ctx: images.Context, ref: str) -> None:
    """Write the context under .mlkit/build, log in to the project's registry, build and push."""
    from .. import projectfs

    # The context is emptied and rewritten: a link on the way (.mlkit, build, the API's folder) would
    # take that outside the project, so each is checked (and made) without following links first.
    folder = projectfs.make_dirs(root, f".mlkit/build/{ctx.api}")
    ctx.write(folder)
    user, password, endpoint = clouds.of(spec).registry_login(spec)
    images.build_and_push(folder, ref, endpoint, user, password)


def in_registry(spec: Spec, ref: str, api: str, tag: str) -> bool:
    return clouds.of(spec).has_image(spec, ref, api, tag)


def rerender(root: Path, spec: Spec, facts: facts_mod.Facts, say: Say, rerun: str = "mlkit apply --only apis") -> list[str]:
    """Write the deploy facts into infra/ through the usual three-way merge; the changed files are what a deploy looks like in review.

    `rerun`: the command to run once conflicts are resolved (a rollback's own, since apply would deploy mlkit.yaml instead)."""
    from ..render import merge
    from ..render.infra import MACHINE_OWNED, render

    result = merge.plan(root, render(spec, facts), MACHINE_OWNED)
    merge.apply(result)
    if result.conflicts:
        names = ", ".join(o.path for o in result.conflicts)
        raise UserError(
            f"writing the deploy values into infra/ met your edits in {names}; resolve the <<<<<<< markers, then run `{rerun}` again"
        )
    changed = [o.path for o in result.outcomes if o.action in merge.CHANGING]
    for path in changed:
        say(f"  ~ {path}")
    return changed


def record_revisions(root: Path, spec: Spec, facts: facts_mod.Facts, say: Say, report: Report) -> None:
    """A new revision for each API whose image, model, config or spec entry changed, saved in the record."""
    from . import revisions

    report.revisions = revisions.record(root, spec, facts)
    facts_mod.save(root, facts)
    for api, number in report.revisions.items():
        say(f"revision {number} of {api} recorded (`mlkit history {api}`)")


def roll_out(
    root: Path, spec: Spec, timeout_s: float, say: Say, report: Report, cluster=None, show_keys: bool = False,
    applied_hook: Callable[[], None] | None = None,
) -> None:
    """Apply, prune and wait. A new API key goes to a 0600 file under .mlkit/secrets; the key itself
    is shown only with `show_keys` (a person at a terminal), never into the logs of automation.
    `applied_hook` runs once the cluster holds the manifests, before the wait: what it records
    (a revision) is then true even when the rollout gets stuck, which is when a rollback is wanted."""
    from ..cluster import rollout
    from ..cluster.connect import connect

    objects = rollout.load_manifests(root, spec)
    cluster = cluster or connect(spec)
    try:
        applied = rollout.apply(cluster, spec, objects, say)
        report.pruned = [f"{kind} {name}" for kind, _, name in applied.pruned]
        if applied_hook is not None:
            applied_hook()
        report.new_keys = applied.new_keys
        for api, key in applied.new_keys.items():
            try:
                rel = save_key(root, api, key)
            except UserError as exc:
                raise UserError(
                    f"{exc.message} (the new key of {api} is in the cluster: "
                    f"kubectl get secret {api}-api-keys -n {spec.k8s_namespace} -o jsonpath='{{.data.keys}}' | base64 -d)"
                ) from None
            report.key_files[api] = rel
            say(f"API key of {api}: new, in Secret {api}-api-keys and in {rel} (readable by you only, git-ignored)")
            if show_keys:
                say(f"  {key}")
        if not applied.changed_deployments:
            say("no Deployment changed: nothing to roll out")
            return
        say(f"waiting for {len(applied.changed_deployments)} rollouts (up to {timeout_s:g} s) ...")
        rollout.wait(cluster, spec, applied.changed_deployments, timeout_s, say)
        report.rolled_out = [d["metadata"]["name"] for d in applied.changed_deployments]
    finally:
        cluster.close()
