"""Where on a Ray cluster an actor may run: the resources it reserves and the node labels it needs.

A team file says it per kind of agent, and ``[models.providers.local]`` says it for the local
model's server::

    [[agents]]
    name = "coder"
    ...
    num_cpus = 1                         # CPUs Ray reserves for each agent (default 0: agents mostly wait)
    num_gpus = 0
    resources = { ssd = 1 }              # custom resources: `ray start --resources '{"ssd": 4}'`
    labels = { zone = "in(eu-1,eu-2)" }  # node labels: `ray start --labels zone=eu-1`

A label selector maps a label key to a value (``"eu-1"``), its negation (``"!eu-1"``), a set
(``"in(eu-1,eu-2)"``) or the set's negation (``"!in(spot,preemptible)"``); a node must match every
key. Ray's own labels (``ray.io/node-id``, ``ray.io/accelerator-type``…) may be selected on too.
Ray passes ``label_selector`` on to its scheduler, and an actor no node can take waits, pending, until
one joins (``council up`` names it after :data:`cluster.system.READY_WITHIN` seconds) — so the syntax
is checked here, where the file and line of a mistake are still known.
Keys and values follow Ray's (Kubernetes') rules: at most 63 characters, letters, digits, ``-``,
``_`` and ``.``, starting and ending with a letter or digit; a key may have a DNS prefix
(``example.com/zone``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*/)?{_LABEL}")
_SELECTOR = re.compile(rf"!?(?:in\({_LABEL}(?:, ?{_LABEL})*\)|{_LABEL})")
_RESOURCE = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]{0,99}")
_RESERVED = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory", "object_store_memory": "memory"}
_PRECISION = 1e-4
"""Ray keeps resource amounts to four decimals; a finer amount would be asked for as nothing."""


def _amount(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of at least 0, not {value}")
    if 0 < value < _PRECISION:
        raise ValueError(f"{value} is finer than Ray keeps (0.0001); give 0 or at least 0.0001")
    return value


def _resource(name: str) -> str:
    if name in _RESERVED:
        raise ValueError(f'"{name}" is Ray\'s own resource; use {_RESERVED[name]} instead of resources.{name}')
    if not _RESOURCE.fullmatch(name):
        raise ValueError(f'"{name}" is not a resource name: a letter, then letters, digits, "_", ".", ":", "/" or '
                         '"-" (at most 100), as given to `ray start --resources`')
    return name


def _label_key(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if len(name) > 63 or len(key) > 317 or not _LABEL_KEY.fullmatch(key):
        raise ValueError(f'"{key}" is not a label key: at most 63 letters, digits, "-", "_" or ".", starting and '
                         'ending with a letter or digit, with an optional DNS prefix ("example.com/zone")')
    return key


def _selector(value: str) -> str:
    if not _SELECTOR.fullmatch(value):
        raise ValueError(f'"{value}" is not a label selector: give a value ("a100"), "!value", "in(a,b)" or '
                         '"!in(a,b)"; each value at most 63 letters, digits, "-", "_" or ".", starting and ending '
                         "with a letter or digit")
    return value


Amount = Annotated[float, AfterValidator(_amount)]
ResourceName = Annotated[str, AfterValidator(_resource)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelSelector = Annotated[str, AfterValidator(_selector)]


class Placement(BaseModel):
    """What an actor reserves on its node, and which nodes it may run on (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: Amount = 0.0
    """CPUs Ray reserves for the actor while it lives (0: it is scheduled anywhere, however busy)."""
    num_gpus: Amount = 0.0
    """GPUs Ray reserves for it; the actor goes to a node that has them."""
    resources: dict[ResourceName, Amount] = Field(default_factory=dict)
    """Custom resources, by name, as nodes declare them (`ray start --resources '{"name": amount}'`)."""
    labels: dict[LabelKey, LabelSelector] = Field(default_factory=dict)
    """Node labels the actor's node must match (`ray start --labels key=value`); see the module."""

    def ray_options(self) -> dict[str, Any]:
        """These as Ray actor options (``num_cpus``, ``num_gpus``, ``resources``, ``label_selector``), the
        empty ones left out, so Ray's defaults stand."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.labels:
            options["label_selector"] = dict(self.labels)
        return options

    def placement(self) -> Placement:
        """Only the placement of this (a team's agent kind, a provider's settings)."""
        return Placement(num_cpus=self.num_cpus, num_gpus=self.num_gpus, resources=self.resources,
                         labels=self.labels)
