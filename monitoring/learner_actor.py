"""The learner actor: the Ray shell around :class:`monitoring.learner.Learner`.

Like the error detector's, a :class:`actors.follow.Follower` folds the log from position 1 when the
actor starts (so the learner knows every lesson and strategy it recorded), then follows it,
appending the lessons and strategy changes it decides.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from actors.dispatch import DispatchSettings
from actors.follow import Follower, reader_for
from actors.llm.config import load_models
from actors.store_client import StoreClient
from monitoring.learner import Learner, LearnerSettings


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=2)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class LearnerActor:
    """Runs the learner's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, settings: dict[str, Any] | None = None, models: dict[str, Any] | None = None,
                 dispatch: dict[str, Any] | None = None) -> None:
        """``models`` is the team's ``[models]`` table (its fallback chains are what a model may be swapped for);
        ``dispatch`` the dispatcher's settings (its lease is what a lease strategy lengthens)."""
        self.learner = Learner(LearnerSettings(**(settings or {})), fallback=dict(load_models(models).fallback),
                               lease=DispatchSettings.model_validate(dispatch or {}).lease)
        self.follower = Follower(self.learner, StoreClient(), reader=reader_for(store_url))
        self.follower.catch_up()
        self.follower.start("learner")

    def step(self) -> int:
        """Decide now (the follower does this on its own); how many appends were made."""
        return self.follower.step()[0]

    def stats(self) -> dict[str, int | str]:
        """What its follower did (see :meth:`actors.follow.Follower.stats`)."""
        return self.follower.stats()

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
