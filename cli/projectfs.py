"""Reading, writing and deleting files inside a project without ever following a link.

Everything under `infra/` and `.mlkit/` may come from a pull request someone else wrote, so a path
mlkit is about to touch is checked component by component from the project root with lstat: a
symbolic link anywhere on the way (`infra` itself, `.mlkit`, a folder, the file) is refused rather
than followed, and so is a directory, a FIFO or a binary file where a text file belongs. Writes go
to a temp file created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW) in the target's own directory,
synced, then renamed over the target, so a planted link is never written through and a crash
leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import stat
from pathlib import Path
from typing import NoReturn

from .errors import UserError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Rendered files are a few hundred kB at most; a bigger file in their place is not one of them.
MAX_TEXT_BYTES = 16 * 1024 * 1024


def check_relative(rel: str, where: str, fix: str, under: str | None = None) -> str:
    """`rel` as a safe project path: relative, POSIX, normalised, no NUL, optionally under one folder."""
    problem = None
    if not isinstance(rel, str) or not rel:
        problem = "an empty or non-text path"
    elif "\x00" in rel or "\\" in rel or any(ord(c) < 32 for c in rel):
        problem = f"path {rel!r} holds a NUL, a backslash or a control character"
    elif rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        problem = f"path {rel!r} is absolute"
    elif ".." in rel.split("/"):
        problem = f"path {rel!r} climbs out with '..'"
    elif posixpath.normpath(rel) != rel:
        problem = f"path {rel!r} is not normalised"
    elif under is not None and not rel.startswith(under + "/"):
        problem = f"path {rel!r} is not under {under}/"
    if problem:
        raise UserError(f"{where}: {problem}; {fix}")
    return rel


def _refuse_link(shown: str) -> NoReturn:
    raise UserError(
        f"{shown} is a symbolic link; mlkit never reads or writes through links inside the project. "
        "Replace it with a regular file or folder (or remove it), then run again"
    )


def check_parents(root: Path, rel: str) -> Path:
    """The path of `rel` under root, after checking that no existing folder on the way is a link or a file."""
    current = root
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return root / rel  # the rest does not exist yet: nothing on the way to follow
        shown = "/".join(parts[: i + 1])
        if stat.S_ISLNK(st.st_mode):
            _refuse_link(shown)
        if not stat.S_ISDIR(st.st_mode):
            raise UserError(f"{shown} is not a folder, but mlkit keeps {rel} inside it; move it away, then run again")
    return root / rel


def read_text(root: Path, rel: str) -> str | None:
    """The text of a project file, or None if it does not exist; a link, folder or binary file is an error."""
    path = check_parents(root, rel)
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            _refuse_link(rel)
        if os.path.isdir(path):
            raise UserError(f"{rel} is a folder where mlkit keeps a file; move it away, then run again") from None
        raise UserError(f"{rel}: cannot read it ({exc.strerror})") from None
    st = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(st.st_mode):
        problem = f"{rel} is a folder where mlkit keeps a file; move it away, then run again"
    elif not stat.S_ISREG(st.st_mode):
        problem = f"{rel} is not a regular file (a FIFO, socket or device); remove it, then run again"
    elif st.st_size > MAX_TEXT_BYTES:
        problem = f"{rel} is {st.st_size} bytes, more than mlkit ever writes there; move it away, then run again"
    if problem:
        os.close(fd)
        raise UserError(problem)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_TEXT_BYTES + 1)
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{rel} is a binary file where mlkit keeps a text file; move it away (or restore it from git), then run again") from None


def make_dirs(root: Path, rel_dir: str) -> Path:
    """Create the folders of rel_dir one by one, refusing a link or a file on the way."""
    current = root
    for i, part in enumerate(p for p in rel_dir.split("/") if p):
        current = current / part
        try:
            os.mkdir(current, 0o777)
        except FileExistsError:
            st = os.lstat(current)
            shown = "/".join(rel_dir.split("/")[: i + 1])
            if stat.S_ISLNK(st.st_mode):
                _refuse_link(shown)
            if not stat.S_ISDIR(st.st_mode):
                raise UserError(f"{shown} is not a folder, but mlkit keeps files inside it; move it away, then run again") from None
    return current


def write_text(root: Path, rel: str, content: str, mode: int | None = None) -> None:
    """Replace (or create) a project file atomically, never through a link."""
    parent = posixpath.dirname(rel)
    directory = make_dirs(root, parent) if parent else root
    check_parents(root, rel)
    try:
        atomic_write(directory / posixpath.basename(rel), content.encode("utf-8"), mode)
    except OSError as exc:  # a folder in the file's place, a read-only folder, a full disk
        raise UserError(f"{rel}: cannot write it ({exc.strerror}); move away what is in its place, then run again") from None


def atomic_write(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a fresh temp file beside `target` (exclusive, no links), sync it, rename it over target.

    `mode` None keeps an existing regular file's mode, else the umask's default for a new file.
    The temp file has its final mode from its first byte: it is created with it.
    """
    if mode is None:
        try:
            st = os.lstat(target)
            mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
        except FileNotFoundError:
            pass
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.mlkit-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:  # created with at most these bits (the umask takes some); now exactly these
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove(root: Path, rel: str) -> None:
    """Delete a project file (never what a link points at, never a folder); a missing file is fine."""
    path = check_parents(root, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{rel} is a folder where mlkit keeps a file; move it away, then run again")
    try:
        os.unlink(path)  # a link itself goes, never what it points at
    except OSError as exc:
        raise UserError(f"{rel}: cannot delete it ({exc.strerror})") from None
