"""`python -m mlkit_runtime --predictor predictor.py:Predictor --model-dir DIR --port 8080`.

Every flag has an MLKIT_* environment variable (see settings.py); flags win.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from dataclasses import MISSING, fields

from .errors import PredictorLoadError
from .settings import Settings, SettingsError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlkit_runtime",
        description="Serve a predictor class over HTTP: /predict, KServe v1, Open Inference Protocol v2, /healthz, /readyz, /metrics.",
        epilog=(
            "Every option can also be set with an environment variable, e.g. MLKIT_MAX_BATCH_SIZE=16. "
            "Exit codes: 0 drained after SIGTERM; 1 the predictor failed to load (one line naming the file, "
            "the line and the error; --debug adds the traceback); 2 a bad setting."
        ),
    )
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_ = f"{f.metadata['help']} [{Settings.env_name(f.name)}; default: {default}]"
        if isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            p.add_argument(flag, dest=f.name, default=None, help=help_, metavar=f.name.upper())
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load({k: v for k, v in vars(args).items() if v is not None})
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .launch import serve

    try:
        code = serve(settings)
        if settings.mode != "realtime":
            # An async worker stopped past its drain timeout released what it held, but the predictor call it
            # abandoned runs on in a thread, which the interpreter would wait for at exit: nothing needs its answer.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except SettingsError as exc:  # a file a setting names changed after the check (an API keys file emptied)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PredictorLoadError as exc:
        if settings.debug:
            traceback.print_exception(exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
