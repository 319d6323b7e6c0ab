"""Ray tests of the runtime share the ``ray_instance`` fixture from tests/conftest.py."""
