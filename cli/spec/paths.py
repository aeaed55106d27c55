"""The files and buckets a spec names, checked statically at validate: nothing is imported or written.

A predictor file must be a regular file inside the project (no absolute path, no `..`, no link that
leads out) and define the class at its top level, which `ast` tells without running it. A local
model must be a folder inside the project; a remote one must use its cloud's scheme and a valid
bucket name. Otherwise the image build, the upload or the pod's model fetcher fails much later.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .. import clouds
from .problem import Loc, Problem
from .schema import Spec

PREDICTOR_MAX_BYTES = 4 * 1024 * 1024


def check(spec: Spec, root: Path | None) -> list[Problem]:
    """Problems of the predictors and models the spec names; files are looked at only with `root`."""
    return list(_all(spec, root.absolute() if root is not None else None))


def _all(spec: Spec, root: Path | None) -> Iterator[Problem]:
    parsed: dict[str, ast.Module | str] = {}
    for i, api in enumerate(spec.apis):
        tracks: list[tuple[Loc, str | None, str | None]] = [(("apis", i), api.predictor, api.model)]
        if api.canary is not None:
            tracks.append((("apis", i, "canary"), api.canary.predictor, api.canary.model))
        for loc, predictor, model in tracks:
            if predictor is not None and root is not None and (problem := _predictor(root, predictor, parsed)):
                yield Problem(loc + ("predictor",), problem)
            if model is not None and (problem := _model(root, model, spec.cloud)):
                yield Problem(loc + ("model",), problem)


def _inside(root: Path, rel: str, what: str) -> tuple[Path | None, str | None]:
    """The path of `rel` under the project, or why it is not one: absolute, `..`, or a link leading out."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        return None, f"{rel!r} is an absolute path; name the {what} relative to mlkit.yaml, inside the project"
    if ".." in pure.parts:
        return None, f"{rel!r} climbs out with '..'; the {what} must be inside the project (the folder of mlkit.yaml)"
    path = root / pure
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        return None, f"no {what} {rel!r} in the project folder {root}"
    except (OSError, RuntimeError) as exc:  # a link loop
        return None, f"cannot follow {rel!r}: {exc}"
    if not real.is_relative_to(root.resolve()):
        return None, (f"{rel!r} leads outside the project (a symbolic link to {real}); "
                      f"the {what} must be inside the project, which is what the image and upload take")
    return real, None


def _predictor(root: Path, value: str, parsed: dict[str, ast.Module | str]) -> str | None:
    file_part, _, class_name = value.rpartition(":")
    if file_part not in parsed:
        parsed[file_part] = _parse(root, file_part)
    module = parsed[file_part]
    if isinstance(module, str):
        return module
    defined = _top_level_names(module)
    if class_name not in defined:
        classes = [n.name for n in module.body if isinstance(n, ast.ClassDef)]
        return f"{file_part} defines no {class_name!r} at its top level (classes there: {', '.join(classes) or 'none'}); fix the class name after ':'"
    return None


def _parse(root: Path, file_part: str) -> ast.Module | str:
    path, problem = _inside(root, file_part, "predictor file")
    if problem:
        return problem
    assert path is not None
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        return f"{file_part!r} is not a regular file; name the Python file that defines the predictor"
    if info.st_size > PREDICTOR_MAX_BYTES:
        return f"{file_part} is {info.st_size} bytes; a predictor file is at most {PREDICTOR_MAX_BYTES // (1024 * 1024)} MiB (keep weights in the model folder)"
    try:
        source = path.read_bytes()
        return ast.parse(source, filename=file_part)
    except SyntaxError as exc:
        return f"{file_part}:{exc.lineno}:{exc.offset or 0}: Python syntax error: {exc.msg}; fix the file"
    except (ValueError, OSError) as exc:  # NUL bytes, unreadable
        return f"cannot read {file_part} as Python source: {exc}"


def _top_level_names(module: ast.Module) -> set[str]:
    """Names a module binds at its top level: classes, and names assigned or imported (a predictor may be re-exported)."""
    names: set[str] = set()
    for node in module.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _model(root: Path | None, value: str, cloud: str) -> str | None:
    scheme = clouds.named(cloud).bucket_scheme
    choices = f"valid on {cloud}: {scheme}://bucket/prefix, or a folder inside the project such as model/"
    if not value.strip():
        return f"is empty ({choices})"
    if value != value.strip():
        return f"{value!r} has spaces around it; remove them"
    if "://" in value:
        given, _, rest = value.partition("://")
        if given != scheme:
            other = {"s3": "an AWS", "gs": "a GCP"}.get(given)
            why = f"{given}:// is {other} bucket, which a cluster on {cloud} cannot read" if other else f"{given}:// is not a model location"
            return f"{why} ({choices})"
        bucket = rest.split("/", 1)[0]
        problem = clouds.named(cloud).bucket_problem(bucket)
        if problem:
            return f"bucket {bucket!r} {problem}"
        return None
    if root is None:
        return None
    path, problem = _inside(root, value, "model folder")
    if problem:
        return f"{problem} ({choices})" if problem.startswith("no ") else problem
    assert path is not None
    if not path.is_dir():
        return f"{value!r} is not a folder; a local model is a folder of files, uploaded on apply ({choices})"
    return None
