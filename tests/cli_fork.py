"""`mlkit ARGS` in a process forked from one that has already imported the kit: what tests/conftest.py's
`mlkit()` runs, so that each of the suite's ~2,000 CLI runs does not import typer, pydantic, Jinja and the
spec models again (half to two thirds of a short command's CPU; docs/testing.md has the figures).

What the command gets is what `python -m mlkit ARGS` gets: a process of its own, the test's argv, working
folder (also sys.path[0], as `-m` makes it), environment and standard streams, its exit status (a signal
as a negative one, as subprocess says it), an uncaught exception printed as Python prints it with exit 1,
and the interpreter's shutdown (non-daemon threads joined, atexit handlers run). What differs is only
what an interpreter fixes as it starts: the PYTHON* variables (a call that changes one, PYTHONPATH for a
fake module, runs a fresh interpreter instead) and the hash seed (shared by the forks of one server).
`mlkit serve` always runs fresh (it may exec an engine). tests/test_cli_fork.py holds the two ways to
the same outputs.

The server (`python -m tests.cli_fork SOCKET`, one per pytest process, started on first use) imports the
kit, then for each request forks a child that forks the command process, waits for it and sends back
its status: only the command's parent can read how it ended, and the server itself stays single-threaded
so that every fork is of a clean process.
"""

from __future__ import annotations

import atexit
import io
import json
import locale
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Modules a short command imports (mlkit render imports the most): imported once in the server.
# mlkit.__main__ itself is not: runpy runs it as __main__, and warns where it was imported before.
PRELOAD = ("mlkit.app", "mlkit.errors", "mlkit.options", "mlkit.spec.loader", "mlkit.spec.schema", "mlkit.render.infra", "mlkit.render.jinja")
FRESH_COMMANDS = {"serve"}
ENABLED = os.environ.get("MLKIT_TEST_CLI_FORK", "1") != "0"


def interpreter_settings(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith("PYTHON")}


class ForkServer:
    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="mlkit-cli-fork.")
        self.path = os.path.join(self.folder, "socket")
        self.env = dict(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_fork", self.path], cwd=REPO, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.folder, "server.log"), "w"),
        )
        deadline = time.monotonic() + 120
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tests/cli_fork.py: the fork server did not start: {Path(self.folder, 'server.log').read_text()[-2000:]}")
            time.sleep(0.02)
        atexit.register(self.close)

    def close(self) -> None:
        atexit.unregister(self.close)
        self.process.kill()
        self.process.wait()
        for name in ("socket", "server.log"):
            Path(self.folder, name).unlink(missing_ok=True)
        os.rmdir(self.folder)

    def run(self, args: list[str], cwd: Path, env: dict[str, str], input: str | None, timeout: float, module: str = "mlkit") -> subprocess.CompletedProcess:
        """`python -m MODULE ARGS` (mlkit; tests/test_cli_fork.py also runs a probe module both ways)."""
        argv = [sys.executable, "-m", module, *args]
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            if input is not None:
                stdin.write(input.encode(locale.getpreferredencoding(False)))
                stdin.seek(0)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(self.path)
                request = json.dumps({"module": module, "args": args, "cwd": str(cwd), "env": env}).encode()
                # Without input, stdin is the empty file: a read ends at once, as on /dev/null.
                socket.send_fds(conn, [struct.pack("!I", len(request)) + request], [stdin.fileno(), stdout.fileno(), stderr.fileno()])
                conn.settimeout(timeout)
                (pid,) = struct.unpack("!i", receive(conn, 4))
                try:
                    status = receive(conn, STATUS.size)
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    conn.settimeout(None)
                    self.count(receive(conn, STATUS.size))
                    raise subprocess.TimeoutExpired(argv, timeout, read(stdout), read(stderr)) from None
                code = self.count(status)
            return subprocess.CompletedProcess(argv, code, read(stdout), read(stderr))


    def count(self, status: bytes) -> int:
        """The command's exit status; its CPU seconds (and its children's) go to `children_cpu`, since the
        command is not this process's child and getrusage(RUSAGE_CHILDREN) never sees it."""
        global children_cpu, forked
        code, cpu = STATUS.unpack(status)
        children_cpu += cpu
        forked += 1
        return int(code)


def receive(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise RuntimeError("tests/cli_fork.py: the fork server's waiter ended without the command's status")
        data += chunk
    return data


def read(stream) -> str:
    """What subprocess's text mode makes of the bytes: the locale's encoding, universal newlines."""
    stream.seek(0)
    return io.TextIOWrapper(stream, encoding=locale.getpreferredencoding(False)).read()


# Exit status, then the CPU seconds of the command and of the processes it waited for (os.wait4).
STATUS = struct.Struct("!id")
# CPU seconds of the commands this process has run through the server (tests/conftest.py adds them to a
# test's children's CPU in the CPU report).
children_cpu = 0.0
forked = 0  # commands run through the server (tests/test_cli_fork.py: which calls are forks)
_server: ForkServer | None = None
_lock = threading.Lock()


def run(args: tuple[str, ...], cwd: Path, env: dict[str, str], input: str | None, timeout: float) -> subprocess.CompletedProcess:
    """Run `mlkit ARGS` in a fork of the server where nothing that only start-up decides is asked to change,
    else in a fresh `python -m mlkit`, as a user would."""
    global _server
    with _lock:
        if ENABLED and _server is None:
            _server = ForkServer()
        server = _server
    if server is None or (args and args[0] in FRESH_COMMANDS) or interpreter_settings(env) != interpreter_settings(server.env):
        return subprocess.run([sys.executable, "-m", "mlkit", *args], cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=timeout)
    return server.run(list(args), cwd, env, input, timeout)


# --- the server ----------------------------------------------------------------------------------------


def serve(path: str) -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the server's children (the waiters) are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)  # the socket appears once the kit is imported: the client waits for it
    parent = os.getppid()
    listener.settimeout(1)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the pytest process is gone
                return
            continue
        conn.settimeout(None)
        if os.fork() == 0:
            listener.close()
            try:
                wait_for_command(conn)
            finally:
                os._exit(0)
        conn.close()


def wait_for_command(conn: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own subprocesses must be waitable
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    (size,) = struct.unpack("!I", message[:4])
    body = message[4:]
    while len(body) < size:
        body += conn.recv(size - len(body))
    request = json.loads(body)
    pid = os.fork()
    if pid == 0:
        conn.close()
        command(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(struct.pack("!i", pid))
    _, status, usage = os.wait4(pid, 0)
    conn.sendall(STATUS.pack(os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime))


def command(request: dict, fds: list[int]) -> None:
    """Become `python -m MODULE ARGS`, then end as the interpreter would."""
    import runpy
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.argv = ["-m", *request["args"]]  # runpy sets argv[0] to the module's file, as `-m` does
    sys.path[0] = os.getcwd()
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as Py_FinalizeEx: join non-daemon threads
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 120
    os._exit(code & 0xFF)


if __name__ == "__main__":
    serve(sys.argv[1])
