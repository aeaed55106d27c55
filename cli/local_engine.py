"""`mlkit serve` of an engine API: the engine's own server on this machine, with the spec's flags.

The engine replaces this process (exec), as the container's command does in the cluster; where the
engine is not installed, one line says what to install, or how to serve the API with a predictor.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import NoReturn

from .errors import UserError
from .spec.engines import ENGINES
from .spec.schema import Api


def command_line(api: Api, model: str, host: str, port: int) -> list[str]:
    """The engine's command: the cluster's flags, with this machine's model, address and port."""
    from .placement import api_demand
    from .render.engine_view import engine_args

    _, amount = api_demand(api)
    args = engine_args(api, amount)
    # mlkit's own flags come first, once each (serving.extra_args may not repeat them).
    for flag, value in {"--model": model, "--host": host, "--port": str(port)}.items():
        args[args.index(flag) + 1] = value
    if "--download-dir" in args:  # the cluster's model volume; here the Hugging Face cache
        i = args.index("--download-dir")
        del args[i : i + 2]
    command = list(ENGINES[api.engine or ""].command)
    if command[0] == "python3":  # this interpreter, where `pip install vllm` put the engine
        command[0] = sys.executable
    return [*command, *args]


def serve(api: Api, index: int, root: Path, model_dir: Path | None, host: str, port: int, key: str | None) -> NoReturn:
    engine = api.engine or ""
    if importlib.util.find_spec(engine) is None:
        raise UserError(
            f"apis[{index}] runs engine {engine}, which is not installed here: pip install {engine} (Linux, with a supported accelerator), "
            f"or serve the model with a Python predictor instead (`predictor: file.py:Class`, no `engine:`)"
        )
    if model_dir is not None:
        model = str(model_dir)
    elif api.hf_model:
        model = api.hf_model
    elif api.model and "://" not in api.model:
        model = str(root / api.model)
    else:
        raise UserError(f"apis[{index}].model is {api.model}; download it and pass --model-dir FOLDER to serve it locally")
    if "://" not in model and not Path(model).is_dir() and not api.hf_model:
        raise UserError(f"model folder {model} does not exist; fix `model:` or pass --model-dir")
    env = dict(os.environ)
    if key is not None:
        env[ENGINES[engine].key_env] = key
    line = command_line(api, model, host, port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(line[0], line, env)
