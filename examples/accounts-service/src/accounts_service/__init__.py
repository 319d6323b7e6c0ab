"""A small HTTP service that keeps user accounts in memory."""

__version__ = "0.1.0"
