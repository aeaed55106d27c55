"""`mlkit serve`: run one API of the project locally, with the same runtime the cluster runs.

An API with `api_keys: true` never serves open here either: it takes the keys given, or makes one.
A made key is shown once on a terminal; anywhere else (CI, a log file) it goes to a 0600 file inside
the project, gitignored, and only the file's path is printed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, SpecFile, say

if TYPE_CHECKING:
    from ..spec.schema import Api, Spec


def command(
    api: Annotated[str | None, typer.Argument(help="API to serve; may be left out when the spec has one API.")] = None,
    file: SpecFile = DEFAULT_SPEC,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes it to your network.")] = "127.0.0.1",
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Local model folder, instead of the spec's `model` (needed when that is s3:// or gs://).")
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            metavar="<key>",
            help="A key the API accepts (repeatable). Without keys, an API with `api_keys: true` gets a new one; prefer --api-keys-file on shared machines.",
        ),
    ] = None,
    api_keys_file: Annotated[
        Path | None, typer.Option("--api-keys-file", help="File of keys the API accepts, one per line (re-read when it changes).", dir_okay=False)
    ] = None,
    fronts: Annotated[
        str | None,
        typer.Option(
            "--fronts",
            metavar="N|auto",
            help="HTTP front processes beside one model process (docs/guides/processes.md); default: as the API's pods run, the spec's "
                 "concurrency.fronts, else from its compute.cpu (1 up to 1 CPU); auto: from this machine's CPU quota.",
        ),
    ] = None,
) -> None:
    """Serve an API on this machine: its predictor, config, batching and concurrency from mlkit.yaml.

    Then: curl -H 'Content-Type: application/json' -d '{"text": "great"}' http://127.0.0.1:8080/predict
    """
    spec, chosen, root = chosen_api(file, api, "serve")
    if chosen.kind in ("batch", "task"):
        raise UserError(f"{chosen.name} is `kind: {chosen.kind}`: it runs as jobs, not a service; try `mlkit job run {chosen.name} --input ... --output DIR`")
    if chosen.engine is not None:
        # An engine API runs the engine's own server, as its pods do: vLLM where it is installed.
        from .. import local_engine

        keys = [k.strip() for k in api_key or [] if k.strip()] or ([_made_key(chosen.name, root)] if chosen.api_keys else [])
        local_engine.serve(chosen, spec.apis.index(chosen), root, model_dir, host, port, keys[0] if keys else None)
    model_dir = local_model_dir(file, spec, chosen, root, model_dir, "serve")

    try:
        from mlkit_runtime.launch import serve
        from mlkit_runtime.settings import Settings, SettingsError
    except ImportError as exc:
        raise UserError(f"mlkit serve needs the predictor runtime ({exc.name} is missing): pip install 'mlkit[runtime]'") from None

    from mlkit_runtime.errors import PredictorLoadError

    from ..options import state
    from ..render.fronts import api_fronts

    file_part, _, class_name = (chosen.predictor or "").partition(":")
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
        "fronts": fronts or str(api_fronts(chosen)),  # as its pods run (cli/render/fronts.py)
        # On a laptop the GPUs are the machine's: `auto` counts the visible ones (one process where there are none).
        "model_processes": "auto" if chosen.concurrency.model_per_gpu else "1",
        "debug": state.debug,
    }
    if chosen.monitoring is not None:
        overrides |= chosen.monitoring.runtime_settings()
    results: Path | None = None
    if chosen.kind == "async":
        overrides |= async_overrides(chosen)
        results = local_results(root, chosen.name)
        overrides["results"] = f"file:{results}"
    with _keys(chosen.name, chosen.api_keys, api_key or [], api_keys_file, root) as keys_file:
        if keys_file is not None:
            overrides["api_keys_file"] = str(keys_file)
        try:
            settings = Settings.load(overrides)
        except SettingsError as exc:
            raise UserError(str(exc)) from None

        def announce() -> None:
            if results is not None:
                say(f"serving {chosen.name} (async) on http://{host}:{port}: POST /predict answers 202 with an id, GET /predict/{{id}} its "
                    f"result; front and worker in this process, on an in-process queue, results in {results}")
                return
            say(f"serving {chosen.name} on http://{host}:{port} (POST /predict, "
                f"/v1/models/{chosen.name}:predict, /v2/models/{chosen.name}/infer; docs at /docs)")

        try:
            code = serve(settings, announce)
        except SettingsError as exc:  # a keys file emptied or made unreadable after Settings.load checked it
            raise UserError(str(exc)) from None
        except PredictorLoadError as exc:
            raise UserError(str(exc)) from exc
    if code:
        raise typer.Exit(code)


def async_overrides(api: Api) -> dict[str, object]:
    """An async API's runtime settings on a laptop: front and worker in one process on the embedded queue."""
    from ..spec.schema import AsyncQueue

    q = api.queue or AsyncQueue()
    return {
        "mode": "async",
        "queue": "local",
        "visibility_timeout_s": q.visibility_timeout_s,
        "max_attempts": q.max_attempts,
        "max_body_bytes": q.max_payload_bytes,
    }


def local_results(root: Path, api: str) -> Path:
    """`.mlkit/serve/<api>-results/`: the results folder of an async API served here (gitignored, like made keys)."""
    folder = project_folder(root, "serve", "remove it")
    create_file(folder / ".gitignore", "# keys and results made by `mlkit serve`: never commit them\n*\n", replace=False)
    results = folder / f"{api}-results"
    if results.is_symlink() or (results.exists() and not results.is_dir()):
        raise UserError(f"{results} is a symlink or not a folder; mlkit writes only inside the project: remove it")
    results.mkdir(mode=0o700, exist_ok=True)
    return results


def local_api(file: Path, api: str | None, model_dir: Path | None, verb: str) -> tuple[Spec, Api, Path, Path]:
    """The spec, the API named (or the only one), the project folder and the local model folder."""
    spec, chosen, root = chosen_api(file, api, verb)
    return spec, chosen, root, local_model_dir(file, spec, chosen, root, model_dir, verb)


def chosen_api(file: Path, api: str | None, verb: str) -> tuple[Spec, Api, Path]:
    """The spec, the API named (or the only one) and the project folder."""
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    names = [a.name for a in spec.apis]
    if not names:
        raise UserError(f"{file}: no apis to {verb}; add one under `apis:`")
    if api is None and len(names) > 1:
        raise UserError(f"{file} has {len(names)} APIs; name one: mlkit {verb} {names[0]} (valid: {', '.join(names)})")
    chosen = next((a for a in spec.apis if a.name == (api or names[0])), None)
    if chosen is None:
        raise UserError(f"no API named {api!r} in {file} (valid: {', '.join(names)})")
    return spec, chosen, root


def local_model_dir(file: Path, spec: Spec, chosen: Api, root: Path, model_dir: Path | None, verb: str) -> Path:
    """The local folder an API's model is in: --model-dir, or the spec's local `model:` folder."""
    names = [a.name for a in spec.apis]
    if model_dir is None:
        if chosen.model is None:
            model_dir = root
        elif "://" in chosen.model:
            raise UserError(f"apis[{names.index(chosen.name)}].model is {chosen.model}; download it and pass --model-dir FOLDER to {verb} it locally")
        else:
            model_dir = root / chosen.model
    if not model_dir.is_dir():
        raise UserError(f"model folder {model_dir} does not exist; fix `model:` in {file} or pass --model-dir")
    return model_dir


@contextmanager
def _keys(api: str, wants_keys: bool, given: list[str], given_file: Path | None, root: Path) -> Iterator[Path | None]:
    """The keys file the runtime reads, for as long as it serves; None when the API is open."""
    if given_file is not None:
        if not given_file.is_file():
            raise UserError(f"--api-keys-file {given_file}: no such file; put one key per line")
        yield given_file
        return
    keys = [key.strip() for key in given if key.strip()]
    if given and not keys:
        raise UserError("--api-key is empty; give a key, or leave --api-key out to have one made")
    if not keys and not wants_keys:
        yield None
        return
    if not keys:
        key = "mlk_" + secrets.token_urlsafe(24)
        if not sys.stderr.isatty():  # a log someone else reads: the key goes to a file only we can read
            path = write_local_key(root, api, key)
            say(f"{api} needs an API key (api_keys: true); a new one is in {path} (mode 0600, gitignored): send it as `Authorization: Bearer <key>`")
            yield path
            return
        say(f"{api} needs an API key (api_keys: true); this one, shown once, works until the server stops: {key}")
        keys = [key]
    fd, name = tempfile.mkstemp(prefix=f"mlkit-serve-{api}-", suffix=".keys")  # 0600, outside the project
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("".join(f"{key}\n" for key in keys))
        yield Path(name)
    finally:
        os.unlink(name)


def _made_key(api: str, root: Path) -> str:
    """A new key for an engine served here, shown once on a terminal, else kept in a 0600 file."""
    key = "mlk_" + secrets.token_urlsafe(24)
    if sys.stderr.isatty():
        say(f"{api} needs an API key (api_keys: true); this one, shown once, works until the server stops: {key}")
    else:
        path = write_local_key(root, api, key)
        say(f"{api} needs an API key (api_keys: true); a new one is in {path} (mode 0600, gitignored): send it as `Authorization: Bearer <key>`")
    return key


def write_local_key(root: Path, api: str, key: str) -> Path:
    """Write `.mlkit/serve/<api>.key` (0600 from its first byte), never through a symlink."""
    folder = project_folder(root, "serve", "remove it, or pass --api-key")
    create_file(folder / ".gitignore", "# keys and results made by `mlkit serve`: never commit them\n*\n", replace=False)
    target = folder / f"{api}.key"
    create_file(target, key + "\n", replace=True)
    return target


def project_folder(root: Path, name: str, fix: str, create: bool = True) -> Path:
    """`.mlkit/<name>/` inside the project (0700), made without following a symlink; with
    create=False only checked, so that a command can refuse a bad path before it does its work."""
    folder = root / ".mlkit" / name
    for path in (root / ".mlkit", folder):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise UserError(f"{path} is a symlink or not a folder; mlkit writes only inside the project: {fix}")
        if create:
            path.mkdir(mode=0o700, exist_ok=True)
    return folder


def create_file(path: Path, text: str, replace: bool) -> None:
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path} is a folder; remove it so that mlkit can write its file there")
    if path.is_symlink() or path.exists():
        if not replace and path.is_file() and not path.is_symlink():
            return
        path.unlink()  # a link is removed, never followed; an old key is replaced
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
