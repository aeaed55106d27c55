"""`mlkit serve`: run one API of the project locally, with the same runtime the cluster runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, SpecFile, say


def command(
    api: Annotated[str | None, typer.Argument(help="API to serve; may be left out when the spec has one API.")] = None,
    file: SpecFile = DEFAULT_SPEC,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes it to your network.")] = "127.0.0.1",
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Local model folder, instead of the spec's `model` (needed when that is s3:// or gs://).")] = None,
) -> None:
    """Serve an API on this machine: its predictor, config, batching and concurrency from mlkit.yaml.

    Then: curl -H 'Content-Type: application/json' -d '{"text": "great"}' http://127.0.0.1:8080/predict
    """
    from ..spec import load

    spec = load(file)
    root = file.resolve().parent
    names = [a.name for a in spec.apis]
    if not names:
        raise UserError(f"{file}: no apis to serve; add one under `apis:`")
    if api is None and len(names) > 1:
        raise UserError(f"{file} has {len(names)} APIs; name one: mlkit serve {names[0]} (valid: {', '.join(names)})")
    chosen = next((a for a in spec.apis if a.name == (api or names[0])), None)
    if chosen is None:
        raise UserError(f"no API named {api!r} in {file} (valid: {', '.join(names)})")

    if model_dir is None:
        if chosen.model is None:
            model_dir = root
        elif "://" in chosen.model:
            raise UserError(f"apis[{names.index(chosen.name)}].model is {chosen.model}; download it and pass --model-dir FOLDER to serve it locally")
        else:
            model_dir = root / chosen.model
    if not model_dir.is_dir():
        raise UserError(f"model folder {model_dir} does not exist; fix `model:` in {file} or pass --model-dir")

    try:
        from mlkit_runtime.server import serve
        from mlkit_runtime.settings import Settings, SettingsError
    except ImportError as exc:
        raise UserError(f"mlkit serve needs the predictor runtime ({exc.name} is missing): pip install 'mlkit[runtime]'") from None

    file_part, _, class_name = chosen.predictor.partition(":")
    overrides = {
        "predictor": f"{root / file_part}:{class_name}",
        "model_dir": str(model_dir),
        "name": chosen.name,
        "config": json.dumps(chosen.config),
        "host": host,
        "port": port,
        "max_batch_size": chosen.batching.max_batch_size,
        "max_wait_ms": chosen.batching.max_wait_ms,
        "max_in_flight": chosen.concurrency.max_in_flight,
        "max_queue": chosen.concurrency.max_queue,
    }
    try:
        settings = Settings.load(overrides)
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    say(f"serving {chosen.name} on http://{host}:{port} (POST /predict, /v1/models/{chosen.name}:predict, /v2/models/{chosen.name}/infer; docs at /docs)")
    code = serve(settings)
    if code:
        raise typer.Exit(code)
