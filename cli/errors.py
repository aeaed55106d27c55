"""Errors mlkit reports to users, each with its exit code (see README: Exit codes)."""

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
