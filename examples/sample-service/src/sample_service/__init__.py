"""A small HTTP service that adds numbers."""

__version__ = "0.1.0"
