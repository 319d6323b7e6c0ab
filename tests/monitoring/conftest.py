"""One Ray instance per test module (starting Ray costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from actors import names


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray.init(address="local", namespace=names.NAMESPACE, num_cpus=8, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()

