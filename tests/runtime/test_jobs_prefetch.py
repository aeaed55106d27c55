"""The worker's parse-ahead (mlkit_runtime.jobs.prefetch): the batches it hands over are the lines parsed one by
one would be, in order, from where a resumed shard starts; a bad line spoils only its batch; a worker that stops
early leaves no thread behind."""

from __future__ import annotations

import json
import threading

import orjson
import pytest

from mlkit_runtime.jobs import prefetch
from mlkit_runtime.jobs.prefetch import Prefetch, threaded


def lines(n: int, pad: int = 0) -> list[bytes]:
    return [json.dumps({"x": i, "pad": "p" * pad}).encode() for i in range(n)]


@pytest.mark.parametrize("thread", [False, True], ids=["in-line", "thread"])
@pytest.mark.parametrize("start", [0, 5, 1003])
def test_batches_are_the_lines_parsed_in_order_from_the_start(monkeypatch, thread, start):
    monkeypatch.setattr(prefetch, "BLOCK_BYTES", 2000)  # blocks of a few batches: several hand-offs in the shard
    items = lines(1010)
    feed = Prefetch(items, start, 4, thread=thread)
    got = list(feed)
    feed.close()
    assert [offset for offset, _, _ in got] == list(range(start, 1010, 4))
    assert [chunk for _, chunk, _ in got] == [items[o:o + 4] for o in range(start, 1010, 4)]
    assert [p for _, _, parsed in got for p in parsed] == [orjson.loads(line) for line in items[start:]]


@pytest.mark.parametrize("thread", [False, True], ids=["in-line", "thread"])
def test_a_line_that_is_not_json_spoils_only_its_own_batch(monkeypatch, thread):
    monkeypatch.setattr(prefetch, "BLOCK_BYTES", 200)
    items = lines(40)
    items[13] = b'{"x": 13'
    got = {offset: parsed for offset, _, parsed in Prefetch(items, 0, 4, thread=thread)}
    assert got[12] is None  # the worker's item-by-item path parses it again and reports line 14
    assert all(parsed == [orjson.loads(line) for line in items[o:o + 4]] for o, parsed in got.items() if o != 12)


def test_closing_early_ends_the_thread():
    feed = Prefetch(lines(5000), 0, 4, thread=True)
    next(iter(feed))  # the worker took one batch, then an item failed the shard
    feed.close()
    assert not [t for t in threading.enumerate() if t.name == "mlkit-job-prefetch"]


def test_large_items_are_parsed_in_the_thread_small_ones_in_line():
    assert threaded(lines(64, pad=2000), 0, 32)  # a tensor's worth of JSON an item (the CNN's is 5 KB)
    assert not threaded(lines(64), 0, 32)  # a short text (the sentiment example's is some 90 bytes)
    assert threaded(lines(3) + lines(64, pad=2000), 3, 32)  # judged from where the shard resumes
