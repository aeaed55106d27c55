"""`mlkit build`: the predictor image of each API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say


def command(
    apis: Annotated[list[str] | None, typer.Argument(help="APIs to build; all by default.")] = None,
    context_dir: Annotated[
        Path | None,
        typer.Option("--context-dir", help="Write each API's build context to DIR/<api>/ instead of building: for a CI system with Docker."),
    ] = None,
    file: SpecFile = DEFAULT_SPEC,
    json_out: JsonOut = False,
) -> None:
    """Build each API's image with docker buildx and push it to the project's registry.

    The tag is a hash of the build context (Dockerfile for the API's accelerator, the runtime, your
    code and requirements.txt), so unchanged code is neither rebuilt nor pushed. Without a Docker
    engine, say where to write the contexts (--context-dir) and build them in CI with the tags printed.
    """
    from ..deploy import apis as deploy_apis
    from ..deploy import images
    from ..render import runtime_view
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    wanted = [a for a in spec.apis if not apis or a.name in apis]
    unknown = sorted(set(apis or []) - {a.name for a in spec.apis})
    if unknown:
        raise UserError(f"mlkit.yaml has no API named {', '.join(unknown)} (APIs: {', '.join(a.name for a in spec.apis)})")
    for api in wanted:
        if api.engine is not None:
            say(f"{api.name}: runs engine {api.engine}'s published image; nothing to build")
    wanted = images.built(wanted)
    if context_dir is not None:
        images.check_context_dir(root, context_dir)
        for api in wanted:  # every folder checked before any is written: nothing half-written
            images.check_replaceable(context_dir / api.name)
    if context_dir is None:
        problem = images.docker_problem()
        if problem:
            raise UserError(f"cannot build here: {problem}. Write the contexts with `mlkit build --context-dir DIR` and build them where Docker runs")
    from .. import clouds

    # Contexts written for CI carry the placeholder; a build here asks the cloud (AWS: the account id).
    account = "ACCOUNT-ID" if context_dir is not None else clouds.of(spec).account(deploy_apis.cluster_outputs(root))
    results = []
    for api in wanted:
        ctx = images.context(root, spec, api)
        ref = runtime_view.image_ref(spec, api.name, ctx.tag, account)
        for path, size in ctx.large():
            say(f"warning: {api.name}: {path} is {size / 1e6:,.0f} MB; a model or data set belongs in the bucket (`model:`), or list it in .mlkitignore")
        if context_dir is not None:
            ctx.write(context_dir / api.name)
            say(f"{api.name}: context in {context_dir / api.name}: {len(ctx.files)} files, {ctx.size:,} bytes, tag {ctx.tag}")
            results.append({"api": api.name, "tag": ctx.tag, "image": ref, "context": str(context_dir / api.name), "files": len(ctx.files), "bytes": ctx.size})
            continue
        if deploy_apis.in_registry(spec, ref, api.name, ctx.tag):
            say(f"{api.name}: {ref} is already in the registry")
        else:
            deploy_apis.push(root, spec, ctx, ref)
            say(f"{api.name}: pushed {ref}")
        results.append({"api": api.name, "tag": ctx.tag, "image": ref})
    if json_out:
        print(json.dumps({"type": "mlkit_build", "images": results}))
