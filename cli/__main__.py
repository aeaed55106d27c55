"""Entry point of the `mlkit` command: runs the Typer app and turns mlkit errors into exit codes."""

from __future__ import annotations

import sys


def main() -> None:
    from .app import app
    from .errors import MlkitError
    from .options import state

    try:
        app(prog_name="mlkit")
    except MlkitError as exc:
        if state.debug:
            import traceback

            traceback.print_exc()
        print(f"error: {exc.message}" if "\n" not in exc.message else f"error:\n{exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
