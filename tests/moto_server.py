"""The moto server the tests start: `python -m tests.moto_server ARGS` runs `python -m moto.server ARGS`
with moto's SQS reading the clock cheaply.

Moto 5's SQS computes every attribute of a queue on each send (`Queue.attributes`, for one flag), and each
approximate count walks every message in the queue asking the time twice per message, through
`unix_time_millis()`: a datetime built, an import statement run and a subtraction, per call. With a
thousand requests queued (tests/runtime/test_async_clouds.py) that was 60% of the moto server's 55
CPU-seconds, a quarter of that test's CPU, and the slowest part of the suite's parallel phase. Here
`unix_time()` and `unix_time_millis()` without an argument read `time.time()`: the same number (seconds
since the epoch, UTC), so every answer moto gives stays as it was. Only the speed of the stand-in
changes; the runtime and the stacks under test are untouched.
"""

from __future__ import annotations

import time
from datetime import datetime

from moto.core import utils
from moto.sqs import models


def unix_time(dt: datetime | None = None) -> float:
    return time.time() if dt is None else utils.unix_time(dt)


def unix_time_millis(dt: datetime | None = None) -> float:
    return unix_time(dt) * 1000.0


models.unix_time = unix_time  # type: ignore[assignment]
models.unix_time_millis = unix_time_millis  # type: ignore[assignment]

if __name__ == "__main__":
    from moto.server import main

    main()
