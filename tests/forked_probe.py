"""A program tests/test_cli_fork.py runs both as `python -m probe_module ARGS` (a copy) and through the fork server
(tests/cli_fork.py), to show that a command gets the same streams, folder, environment and exit status both ways."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time

what = sys.argv[1]
if what == "exit":
    sys.exit(int(sys.argv[2]))
elif what == "exit-message":
    sys.exit("a message instead of a status")
elif what == "raise":
    raise ValueError("boom")
elif what == "echo":
    data = sys.stdin.read()
    print(f"out: {data!r}")
    print("err: a line", file=sys.stderr)
    sys.stdout.write("no newline")
elif what == "where":
    print(os.getcwd() == sys.path[0], os.path.basename(sys.argv[0]), sys.argv[2:], os.environ.get("PROBE"), sys.stdin.read())
elif what == "child":
    print(subprocess.run([sys.executable, "-c", "import sys; print('child'); sys.exit(3)"], capture_output=True, text=True))
elif what == "shutdown":
    atexit.register(print, "atexit ran")
    threading.Thread(target=lambda: (time.sleep(0.2), print("a non-daemon thread finished"))).start()
elif what == "signal":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
elif what == "sleep":
    time.sleep(float(sys.argv[2]))
