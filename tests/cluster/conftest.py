"""A Cluster client connected to the test's Kubernetes API emulator (the `k8s` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest

from mlkit.cluster.client import Cluster, Credentials


@pytest.fixture
def cluster(k8s):
    client = Cluster(Credentials(server=k8s.url, name="emulator"))
    yield client
    client.close()
