"""How a long-lived actor is started: one :class:`ActorSpec` per actor, used to boot it and to bring it back.

``cluster.system`` plans the system as a list of specs and starts them; the health monitor is
handed the same specs, and creates an actor that is gone for good (its constructor failed, or it
was killed without restart) again from its spec — the same class, arguments and options, so a
recreated actor is the one that was booted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import names


@dataclass(frozen=True)
class ActorSpec:
    """One named, detached actor in the ``council`` namespace (rule 6): its class, arguments and Ray options."""

    name: str
    actor_class: Any
    """A ``@ray.remote`` class (it travels by reference to its module, so a spec can be sent to another actor)."""
    args: tuple[Any, ...] = ()
    init: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of the constructor."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Ray actor options (``max_concurrency``, ``scheduling_strategy``...); ``num_cpus`` is 0 unless given."""

    def start(self) -> Any:
        """The running actor of this name, or a new one built from this spec; its handle."""
        options = {"num_cpus": 0, **self.options}
        return self.actor_class.options(name=self.name, namespace=names.NAMESPACE, lifetime="detached",
                                        get_if_exists=True, **options).remote(*self.args, **dict(self.init))
