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


def front_main(number: int, settings: Settings, sock: socket.socket, link_socks: list[socket.socket], others: list[socket.socket], facts: dict[str, Any],
               phases: dict[str, float], counter: Any, lock: Any, region_fds: list[int]) -> None:
    """One HTTP front: the app of a single process, with a stand-in predictor and the pod's admission.
    `link_socks`: its link to each model process (one per device). `region_fds`: its shared memory
    (runtime/shared_buffers.py) first, then later fronts' (closed here), or none when it is off."""
    die_with_parent()
    for other in others:  # the other fronts' links: a copy held here would keep the model process from seeing them close
        other.close()
    from .shared_buffers import Region

    region = Region(region_fds[0], settings.shared_memory_mb << 20) if region_fds else None
    for fd in region_fds:
        os.close(fd)
    from .app import create_app
    from .metrics import Metrics
    from .model_link import Links, ModelLink, remote_predictor
    from .server import DrainingServer, build_config
    from .shared_admission import SharedAdmission

    logs.setup(settings.log_level)
    link = Links([ModelLink(link_sock, region) for link_sock in link_socks])
    app = create_app(settings)
    runtime = app.state.runtime
    runtime.admission = SharedAdmission(settings.max_in_flight, settings.max_queue, counter, lock)
    assert isinstance(runtime.metrics, Metrics) and runtime.metrics.pod is not None, "PROMETHEUS_MULTIPROC_DIR is not set"
    runtime.metrics.pod.admission = runtime.admission
    for name, seconds in phases.items():
        runtime.startup._record(name, seconds)
    runtime.startup.end("fronts")
    runtime.instance = remote_predictor(facts, link)
    if facts["input_form"]:  # the class's Input is in the model process: POST /predict asks it there
        async def remote_input_check(payload: Any) -> str | None:
            answer: str | None = await link.call("check", payload)
            return answer

        runtime.remote_input_check = remote_input_check
    runtime.front_process = (number, facts["batches"])
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


def serve_fronts(settings: Settings, fronts: int, announce: Callable[[], None] | None = None, devices: list[str | None] | None = None) -> int:
    """Serve with `fronts` front processes and one model process per entry of `devices` (the
    CUDA_VISIBLE_DEVICES each is pinned to, or None) until drained (0) or a process fails (1)."""
    from . import app, model_process, server, shared_buffers  # noqa: F401  imported once here, shared by the forked fronts

    logs.setup(settings.log_level)
    devices = devices or [None]
    started = process_age()
    context = multiprocessing.get_context("fork")  # nothing heavy imported yet: the model processes import the predictor
    # Each front's shared memory, made before any fork so that the model processes and the front inherit it.
    region_fds: list[int] = []
    try:
        for _ in range(fronts if settings.shared_memory_mb else 0):
            region_fds.append(shared_buffers.create(settings.shared_memory_mb << 20))
    except OSError as exc:  # no memfd here (an old kernel, a sandbox): the socket carries everything, as with --shared-memory-mb 0
        logs.log.warning("no shared memory for tensors (%s): they go through the fronts' links", exc.strerror or exc)
        for fd in region_fds:
            os.close(fd)
        region_fds = []
    # pairs[m][n]: the link between model process m and front n.
    pairs = [[socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(fronts)] for _ in devices]
    models = []
    statuses = []
    for m, device in enumerate(devices):
        status_in, status_out = context.Pipe(duplex=False)
        others = [end for k, row in enumerate(pairs) if k != m for pair in row for end in pair]
        model = context.Process(
            target=model_process.main,
            args=(settings, [model_end for _, model_end in pairs[m]], [front_end for front_end, _ in pairs[m]] + others, status_out, started, device,
                  region_fds),
            name=f"mlkit-model-{m}",
            daemon=False,
        )
        model.start()
        status_out.close()
        models.append(model)
        statuses.append(status_in)
    for row in pairs:
        for _, model_end in row:
            model_end.close()
    messages = []
    for status_in in statuses:
        try:
            messages.append(status_in.recv())
        except EOFError:
            messages.append(("error", "the model process exited before it loaded the predictor"))
    failures = [message for message in messages if message[0] == "error"]
    if failures:
        for row in pairs:
            for front_end, _ in row:
                front_end.close()  # a model process that loaded exits once every link is closed
        for model in models:
            model.join()
        for fd in region_fds:
            os.close(fd)
        raise PredictorLoadError(failures[0][1])
    _, facts, phases = messages[0]
    if announce is not None:
        announce()
    try:
        # Bound only now, after the model processes forked: a copy of the listening socket there would take
        # connections into its backlog after the fronts closed theirs, and never answer them.
        sock = listen(settings)
    except OSError as exc:
        logs.log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc.strerror or exc)
        for row in pairs:
            for front_end, _ in row:
                front_end.close()  # the model processes exit once every link is closed
        for model in models:
            model.join()
        for fd in region_fds:
            os.close(fd)
        return 1
    counter, lock = context.RawValue("q", 0), context.Lock()
    procs = []
    for n in range(fronts):
        mine = [row[n][0] for row in pairs]
        others = [row[k][0] for row in pairs for k in range(n + 1, fronts)]  # earlier fronts' ends are closed here already
        regions = region_fds[n:]  # its own, and the later fronts' that it inherits (earlier ones are closed here already)
        proc = context.Process(target=front_main, args=(n, settings, sock, mine, others, facts, phases, counter, lock, regions), name=f"mlkit-front-{n}")
        proc.start()
        for end in mine:
            end.close()
        if region_fds:
            os.close(region_fds[n])
        procs.append(proc)
    sock.close()
    pinned = "" if devices == [None] else " pinned to CUDA_VISIBLE_DEVICES " + ", ".join(str(d) for d in devices)
    pids = ", ".join(str(m.pid) for m in models)
    what = f"one model process (pid {pids})" if len(models) == 1 else f"{len(models)} model processes (pids {pids})"
    logs.log.info("serving with %d front processes (pids %s) and %s%s", fronts, ", ".join(str(p.pid) for p in procs), what, pinned)

    signals: list[int] = []

    def forward(sig: int, frame: FrameType | None) -> None:
        signals.append(sig)
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM if len(signals) == 1 else signal.SIGKILL)
        if len(signals) > 1:
            for model in models:
                if model.pid is not None and model.is_alive():
                    os.kill(model.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    alive = [p for p in procs]
    serving = list(models)  # model processes not yet seen to exit
    while alive:
        wait([p.sentinel for p in alive] + [m.sentinel for m in serving])
        for model in [m for m in serving if not m.is_alive()]:
            serving.remove(model)
            if not signals:  # a model process died while serving (killed, out of memory): stop the fronts, so the pod restarts
                which = "the model process" if len(models) == 1 else f"model process {model.name}"
                logs.log.error("%s exited with %s while serving; stopping the fronts", which, model.exitcode)
                failed = True
                forward(signal.SIGTERM, None)
        for proc in [p for p in alive if not p.is_alive()]:
            alive.remove(proc)
            if not signals and proc.exitcode != 0:  # a front died while serving: the pod is broken, stop it
                logs.log.error("front %s exited with %s; stopping the others", proc.name, proc.exitcode)
                failed = True
                forward(signal.SIGTERM, None)
    for model in models:
        model.join()
        if model.exitcode != 0:
            logs.log.error("model process %s exited with %s", model.name, model.exitcode)
            failed = True
    if not failed:
        logs.log.info("drained: %d fronts, then the model process%s, exited", fronts, "" if len(models) == 1 else "es")
    return 1 if failed else 0
