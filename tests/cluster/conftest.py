"""A Kubernetes API emulator per test, and a Cluster client connected to it."""

from __future__ import annotations

import pytest

from mlkit.cluster.client import Cluster, Credentials
from tests.cluster.emulator import start


@pytest.fixture
def k8s():
    running, shutdown = start()
    yield running
    shutdown()


@pytest.fixture
def cluster(k8s):
    client = Cluster(Credentials(server=k8s.url, name="emulator"))
    yield client
    client.close()
