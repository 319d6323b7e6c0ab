"""Constrained field types shared by the catalogue; msgspec checks them when an event is appended.

Constraints are lengths and ranges only. Patterns on identifiers are checked where names enter
the system (the CLI, the driver, the council), not on every event: a regular expression per field
would multiply the cost of validating an append several times over.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

Id = Annotated[str, Meta(min_length=1, max_length=200)]
"""An identifier: a task, request, agent or lease id."""

Priority = Annotated[int, Meta(ge=0, le=3)]
"""0 critical (P0), 1 high, 2 normal, 3 low."""

Capability = Annotated[str, Meta(min_length=1, max_length=100)]
"""What an agent can do, in dotted words: ``code.generate``, ``test.run``, ``deploy.local``."""

Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(ge=0)]
Text = Annotated[str, Meta(max_length=64 * 1024)]
Inputs = dict[str, Any]
