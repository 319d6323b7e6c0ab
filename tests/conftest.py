"""Shared test configuration: hypothesis profiles, and one Ray instance per test module that asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """A local Ray for the module's tests (starting Ray costs seconds, so one per module)."""
    import ray

    from actors import names

    ray.init(address="local", namespace=names.NAMESPACE, num_cpus=8, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()
