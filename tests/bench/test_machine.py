"""The busy-machine note: the load average against the CPUs, read before the bench starts."""

from __future__ import annotations

import os

from mlkit.bench import machine


def test_a_busy_machine_is_named_and_a_quiet_one_is_not(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (10.18, 11.4, 9.0))
    busy = machine.load()
    assert busy == {"cpus": 2, "load_average_1m": 10.18, "busy": True}
    assert "load average 10.18 on 2 CPUs" in (machine.warning(busy) or "")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.3, 0.2))
    assert machine.load()["busy"] is False and machine.warning(machine.load()) is None

    def unavailable() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert machine.load() == {"cpus": 2, "load_average_1m": None, "busy": False}
