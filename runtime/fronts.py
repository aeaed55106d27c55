"""A runtime of several processes (`--fronts N`, N > 1): N HTTP fronts share the pod's listening
socket, and one model process (runtime/model_process.py) loads the predictor once and batches across
them. Fronts parse, check, admit (runtime/shared_admission.py: the bounds hold for the pod) and decode,
then hand payloads over their link (runtime/model_link.py).

This process is the parent: it binds the socket, forks the model process, waits until the predictor
is loaded (or reports its error as one line, exit 1), forks the fronts, and on SIGTERM passes the
signal on to the fronts. Each front drains as a single process does; the model process exits once
every front has closed its link, so it is the last to go. PROMETHEUS_MULTIPROC_DIR must be set
before prometheus_client is imported (runtime/__main__.py does it), so that /metrics is the pod's.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

from . import logs
from .errors import PredictorLoadError
from .parent_death import die_with_parent
from .settings import Settings
from .startup import process_age


def listen(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def front_main(settings: Settings, sock: socket.socket, link_sock: socket.socket, others: list[socket.socket], facts: dict[str, Any],
               phases: dict[str, float], counter: Any, lock: Any) -> None:
    """One HTTP front: the app of a single process, with a stand-in predictor and the pod's admission."""
    die_with_parent()
    for other in others:  # the other fronts' links: a copy held here would keep the model process from seeing them close
        other.close()
    from .app import create_app
    from .metrics import Metrics
    from .model_link import ModelLink, remote_predictor
    from .server import DrainingServer, build_config
    from .shared_admission import SharedAdmission

    logs.setup(settings.log_level)
    link = ModelLink(link_sock)
    app = create_app(settings)
    runtime = app.state.runtime
    runtime.admission = SharedAdmission(settings.max_in_flight, settings.max_queue, counter, lock)
    assert isinstance(runtime.metrics, Metrics) and runtime.metrics.pod is not None, "PROMETHEUS_MULTIPROC_DIR is not set"
    runtime.metrics.pod.admission = runtime.admission
    for name, seconds in phases.items():
        runtime.startup._record(name, seconds)
    runtime.startup.end("fronts")
    runtime.instance = remote_predictor(facts, link)
    start, stop = runtime.start, runtime.stop

    async def start_with_link() -> None:
        await link.open()
        await start()

    async def stop_then_unlink() -> None:
        await stop()
        link.close()  # the model process exits once every front has closed its link

    runtime.start, runtime.stop = start_with_link, stop_then_unlink
    class FrontServer(DrainingServer):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # The first front to close stops the shared socket listening for every front at once (Linux):
            # otherwise a connection another front accepts as it closes would be dropped unanswered.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            await super().shutdown(sockets)

    server = FrontServer(build_config(settings, app), settings, runtime)
    server.run(sockets=[sock])
    sys.stdout.flush()
    os._exit(0 if server.started else 1)


def serve_fronts(settings: Settings, fronts: int, announce: Callable[[], None] | None = None) -> int:
    """Serve with `fronts` front processes and one model process until drained (0) or a process fails (1)."""
    from . import app, model_process, server  # noqa: F401  imported once here, shared by the forked fronts

    logs.setup(settings.log_level)
    started = process_age()
    context = multiprocessing.get_context("fork")  # nothing heavy imported yet: the model process imports the predictor
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(fronts)]
    status_in, status_out = context.Pipe(duplex=False)
    model = context.Process(
        target=model_process.main,
        args=(settings, [model_end for _, model_end in pairs], [front_end for front_end, _ in pairs], status_out, started),
        name="mlkit-model",
        daemon=False,
    )
    model.start()
    status_out.close()
    for _, model_end in pairs:
        model_end.close()
    try:
        message = status_in.recv()
    except EOFError:
        message = ("error", "the model process exited before it loaded the predictor")
    if message[0] == "error":
        model.join()
        raise PredictorLoadError(message[1])
    _, facts, phases = message
    if announce is not None:
        announce()
    try:
        # Bound only now, after the model process forked: a copy of the listening socket there would take
        # connections into its backlog after the fronts closed theirs, and never answer them.
        sock = listen(settings)
    except OSError as exc:
        logs.log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc.strerror or exc)
        for front_end, _ in pairs:
            front_end.close()  # the model process exits once every link is closed
        model.join()
        return 1
    counter, lock = context.RawValue("q", 0), context.Lock()
    procs = []
    for n, (front_end, _) in enumerate(pairs):
        others = [other for other, _ in pairs[n + 1:]]  # earlier fronts' ends are closed here already
        proc = context.Process(target=front_main, args=(settings, sock, front_end, others, facts, phases, counter, lock), name=f"mlkit-front-{n}")
        proc.start()
        front_end.close()
        procs.append(proc)
    sock.close()
    logs.log.info("serving with %d front processes (pids %s) and one model process (pid %s)", fronts, ", ".join(str(p.pid) for p in procs), model.pid)

    signals: list[int] = []

    def forward(sig: int, frame: FrameType | None) -> None:
        signals.append(sig)
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM if len(signals) == 1 else signal.SIGKILL)
        if len(signals) > 1 and model.pid is not None and model.is_alive():
            os.kill(model.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    alive = [p for p in procs]
    model_gone = False
    while alive:
        wait([p.sentinel for p in alive] + ([] if model_gone else [model.sentinel]))
        if not model_gone and not model.is_alive():
            model_gone = True
            if not signals:  # the model died while serving (killed, out of memory): stop the fronts, so the pod restarts
                logs.log.error("the model process exited with %s while serving; stopping the fronts", model.exitcode)
                failed = True
                forward(signal.SIGTERM, None)
        for proc in [p for p in alive if not p.is_alive()]:
            alive.remove(proc)
            if not signals and proc.exitcode != 0:  # a front died while serving: the pod is broken, stop it
                logs.log.error("front %s exited with %s; stopping the others", proc.name, proc.exitcode)
                failed = True
                forward(signal.SIGTERM, None)
    model.join()
    if model.exitcode != 0:
        logs.log.error("the model process exited with %s", model.exitcode)
        failed = True
    if not failed:
        logs.log.info("drained: %d fronts, then the model process, exited", fronts)
    return 1 if failed else 0
