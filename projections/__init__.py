"""Folds of the event log into DuckDB read models, and read-only SQL over them. No Ray here.

May import ``events``.
"""
