"""The orchestrator actor: the Ray shell around :class:`actors.orchestrator.process.OrchestratorProcess`, one per
request.

It is named (``orchestrator:<request>``) and detached in the ``council`` namespace, and restarted
by Ray when its process dies. Every incarnation folds the log from the start and runs the same
:class:`actors.follow.Follower` loop as the council's other actors, so a restart decides nothing
twice: its decisions carry ids that are functions of what they decide, and each is appended at the
version of the request's stream it was decided from. Once the request has finished, the actor
leaves (an exit Ray does not restart).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import ray

from actors import names
from actors.follow import Follower, reader_for
from actors.orchestrator.process import OrchestratorProcess
from actors.specs import ActorSpec
from actors.store_client import StoreClient
from events.catalogue import PhaseGrant, VoteProposed, WarrantIssued


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class OrchestratorActor:
    """Follows one request from its plan to its end (see the module)."""

    def __init__(self, store_url: str, request_id: str) -> None:
        self.request_id = request_id
        self.council = ray.get_actor(names.COUNCIL, namespace=names.NAMESPACE)
        self.process = OrchestratorProcess(request_id, self._sign, self._propose)
        self.follower = Follower(self.process, StoreClient(), reader=reader_for(store_url))
        self.follower.catch_up()  # recovery: the request as the log has it, before any decision
        threading.Thread(target=self._run, daemon=True, name=f"orchestrator {request_id}").start()

    def _sign(self, request_id: str, grants: list[PhaseGrant]) -> list[WarrantIssued]:
        found: list[WarrantIssued] = ray.get(self.council.sign_phases.remote(request_id, grants), timeout=60)
        return found

    def _propose(self, request_id: str, amounts: str, subject: str, vote_id: str) -> VoteProposed | str:
        found: Any = ray.get(self.council.propose_allocation.remote(request_id, amounts, subject, vote_id), timeout=60)
        return found if isinstance(found, VoteProposed) else str(found)

    def _run(self) -> None:
        """The follower's loop until the request has finished; then the actor leaves."""
        stopper = threading.Thread(target=self._stop_when_finished, daemon=True)
        stopper.start()
        self.follower.run()
        ray.get_runtime_context().current_actor.leave.remote()

    def _stop_when_finished(self) -> None:
        while not self.follower.stopped:
            if self.process.state.finished is not None:
                self.follower.stop()
                return
            threading.Event().wait(0.5)

    def leave(self) -> None:
        """End this actor for good (the request has finished): Ray does not restart an actor that exits."""
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def status(self) -> dict[str, Any]:
        """Where the request stands, as this orchestrator has folded it."""
        with self.follower.lock:
            s = self.process.state
            return {"request_id": s.request_id, "position": self.process.position,
                    "revisions": s.revisions, "adopted": sorted(s.adopted),
                    "finished": s.finished.outcome if s.finished else None, **self.follower.stats()}

    def step(self) -> int:
        """Decide what is due now (the loop does this on its own; tests call it so as not to wait)."""
        return self.follower.step()[0]

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()


def orchestrate(store_url: str, request_id: str) -> Any:
    """The orchestrator of ``request_id``: the running one, or a new one; its handle."""
    return ActorSpec(names.orchestrator(request_id), OrchestratorActor, (store_url, request_id)).start()
