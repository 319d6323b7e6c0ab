"""How the dispatcher schedules: start deadlines per priority, ageing, leases, retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.snapshots import SnapshotSettings


class DispatchSettings(BaseModel):
    """Scheduling knobs. Times are seconds.

    ``start_deadlines`` gives, per priority (0 critical … 3 low), how long a task may wait in its
    queue before it should have started: immediately, within an hour, within a day, and "when
    free" (no deadline). A task past its deadline is treated as critical. Below that, a waiting
    task rises one priority level every ``ageing`` seconds, so low priority is never starved.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_deadlines: tuple[float | None, float | None, float | None, float | None] = (0.0, 3600.0, 86400.0, None)
    ageing: float = Field(600.0, gt=0, description="seconds of waiting that raise a task one priority level")
    lease: float = Field(60.0, gt=0, description="how long an agent holds a task before it is taken back")
    leases: dict[str, float] = Field({}, description="the lease of the tasks of a capability, where it is not "
                                                     "``lease`` (the learner's lease strategies go here)")
    heartbeat_timeout: float = Field(15.0, gt=0, description="silence after which an agent counts as gone")
    backoff_base: float = Field(1.0, ge=0, description="delay before the first retry; doubles each attempt")
    backoff_max: float = Field(300.0, ge=0, description="longest delay between retries")
    remember_finished: int = Field(50_000, ge=0, description="for how many events the dispatcher keeps a record of "
                                                              "a finished task before it asks the log about it")
    snapshots: SnapshotSettings = Field(SnapshotSettings(), description="how often the dispatcher snapshots its "
                                                                         "state (with a council home only)")

    @model_validator(mode="after")
    def _deadlines_not_negative(self) -> DispatchSettings:
        if any(d is not None and d < 0 for d in self.start_deadlines):
            raise ValueError("start_deadlines must be >= 0 seconds, or null for 'when free'")
        return self

    @model_validator(mode="after")
    def _leases_positive(self) -> DispatchSettings:
        bad = next((c for c, s in self.leases.items() if not s > 0), None)
        if bad is not None:
            raise ValueError(f"leases.{bad} must be > 0 seconds")
        return self

    def lease_for(self, capability: str) -> float:
        """How long an agent holds a task of ``capability`` before it is taken back."""
        return self.leases.get(capability, self.lease)

    def backoff(self, attempt: int) -> float:
        """The delay before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        delay: float = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempt - 1))
        return delay
