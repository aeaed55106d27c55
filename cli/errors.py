"""Errors mlkit reports to users, each with its exit code (docs/troubleshooting.md lists them)."""

from __future__ import annotations


class MlkitError(Exception):
    """An error the CLI reports as a short message, without a traceback (unless --debug)."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UserError(MlkitError):
    """Something the user can fix: a bad spec, a merge conflict, an out-of-date check. Exit 1."""

    exit_code = 1


class SpecError(UserError):
    """An invalid mlkit.yaml; one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class ToolError(MlkitError):
    """An external tool or cloud call failed (terraform, git, ...). Exit 3."""

    exit_code = 3


def shown(value: object, most: int = 120) -> str:
    """A value from outside mlkit as it may appear in a message: one line, safe on a terminal, clipped.

    Rule: every value shown on a terminal is made safe to show. A kubeconfig, a cluster's answer or a
    file from a pull request can hold ESC sequences (which recolour, retitle or rewrite the terminal),
    bidi overrides, newlines (a fake second line) or megabytes; each non-printable character is shown
    as its escape, and the value is cut at `most` characters.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        text = f"an integer of {value.bit_length()} bits"  # str() of a 5000-digit int raises ValueError
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except ValueError:  # a huge integer inside a list or mapping
            text = f"a {type(value).__name__}"
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text[: most + 1])
    return safe[:most] + "..." if len(text) > most or len(safe) > most else safe


def quoted(value: object, most: int = 120) -> str:
    """shown(), with a string in quotes: `'false' is not true or false` says what the file holds."""
    return shown(repr(value[: most + 1]) if isinstance(value, str) else value, most)
