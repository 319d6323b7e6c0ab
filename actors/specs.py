"""How a long-lived actor is started: one :class:`ActorSpec` per actor, used to boot it and to bring it back.

``cluster.system`` plans the system as a list of specs and starts them; the health monitor is
handed the same specs, and creates an actor that is gone for good (its constructor failed, or it
was killed without restart) again from its spec — the same class, arguments and options, so a
recreated actor is the one that was booted.
"""

from __future__ import annotations

import importlib
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

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The class travels as its module and name, not by value: a ``@ray.remote`` class pickles to
        # tens of kilobytes, and specs handed to the health monitor must stay small enough to travel
        # inline with its constructor call — arguments kept in the object store are owned by the
        # driver that booted the system, and are lost with it, so a restarted monitor could not
        # rebuild itself once `council up` has exited.
        where = self.actor_class.__ray_metadata__
        return _spec, (self.name, where.modified_class.__module__, where.class_name, self.args, dict(self.init),
                       dict(self.options))

    def start(self) -> Any:
        """The running actor of this name, or a new one built from this spec; its handle."""
        options = {"num_cpus": 0, **self.options}
        return self.actor_class.options(name=self.name, namespace=names.NAMESPACE, lifetime="detached",
                                        get_if_exists=True, **options).remote(*self.args, **dict(self.init))


def _spec(name: str, module: str, class_name: str, args: tuple[Any, ...], init: Mapping[str, Any],
          options: Mapping[str, Any]) -> ActorSpec:
    """An :class:`ActorSpec` rebuilt where it arrives, its class imported from where it is defined."""
    return ActorSpec(name, getattr(importlib.import_module(module), class_name), args, init, options)
