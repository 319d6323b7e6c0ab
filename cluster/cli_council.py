"""What the governance commands share: the council's home and keys, the log's authority, and where appends go.

Reading is a fold of the log file: :func:`read_authority`, no Ray needed. Appending is the log's
writer's job: a command decides a motion (``governance.motions``) into intents, and hands them to
:func:`log_writer`, the one place that chooses where they go — to the store actor when a council
runs on this log (it is then the log's single writer), to the file itself only when none runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from cluster.cli_app import open_log, out, quiet_ray, settings_for
from cluster.settings import Settings, same_log
from events import AppendResult, CouncilError, EventStore, Intent, open_store
from events.errors import ConcurrencyError, StoreUnavailable
from governance.authority import Authority
from governance.keys import Keyring

if TYPE_CHECKING:
    from ray.actor import ActorHandle

    from actors.store_client import StoreClient

HomeOption = Annotated[str | None, typer.Option(
    "--home", help="The council's directory (keys, published checkpoints). [env: COUNCIL_HOME; default the directory "
                   "of the SQLite log, .council for the default log]",
    show_default=False)]
KeyOption = Annotated[str, typer.Option("--key", help="The name of your key in the keyring.")]

ANSWER_S = 60.0
"""How long a command waits for a running council's actor to answer (seconds)."""


class LogMoved(CouncilError):
    """A stream changed between the fold a motion was decided from and its append; the append was refused."""


class CouncilUnavailable(CouncilError):
    """The running council's actor did not answer in time; the command can be run again."""


def home_dir(home: str | None, store: str | None = None) -> Path:
    """The council's home directory from ``--home``, ``COUNCIL_HOME``, or beside the log (``--store``,
    ``COUNCIL_STORE`` or the default): a council's keys and checkpoints belong to its log."""
    return Path(home) if home else Path(settings_for(store).home)


def keyring(home: str | None, store: str | None = None) -> Keyring:
    """The keyring under the council's home (see :func:`home_dir`)."""
    return Keyring(home_dir(home, store) / "keys")


def pin(keys: Keyring, names: dict[str, str]) -> dict[str, str]:
    """Approver name → fingerprint of the key it names in ``keys`` (approvers whose key is missing are left out)."""
    present = set(keys.names())
    return {approver: keys.public(key).fingerprint for approver, key in names.items() if key in present}


def authority_of(log: EventStore) -> Authority:
    """The council's view of ``log``, folded from position 1."""
    authority = Authority()
    for event in log.read_all(1, None):
        authority.evolve(event)
    return authority


def read_authority(store: str | None) -> Authority:
    """The council's view of the log at ``store`` (``--store``), read directly from the file."""
    with open_log(store, create=False) as log:
        return authority_of(log)


class LogWriter(Protocol):
    """Where a command's intents are appended."""

    def append(self, intents: Sequence[Intent]) -> None:
        """Append ``intents`` in one group commit; raise the first refusal (:class:`LogMoved` for a stream that moved).

        The store accepts or refuses each intent on its own: a motion's intents other than the
        refused one may have landed (a policy's text before its adoption was refused) — none that
        acts on its own, and deciding the motion again takes them into account.
        """

    def revoke(self, intents: Sequence[Intent], warrant_id: str, reason: str, by: str) -> None:
        """Revoke ``warrant_id`` and its descendants: ``intents`` are the revocations decided from the log."""


@contextmanager
def log_writer(settings: Settings) -> Iterator[LogWriter]:
    """The writer of the log ``settings.store`` names, for as long as the block runs.

    If Ray is reachable at ``settings.address`` (or on this machine) and the council's store actor
    runs there, the store actor appends (and the council actor revokes, when it runs); if that
    store actor writes another log, :class:`AnotherLog` says which. Otherwise no council runs,
    and the file is appended to directly — this command is then the log's only writer.
    """
    from cluster.runtime import RayUnavailable, connect

    quiet_ray()
    try:
        connect(settings.address, start="none")
        joined = True
    except RayUnavailable:
        joined = False
    try:
        running = _running_council(settings) if joined else None
        if running is not None:
            yield running
        else:
            with open_store(settings.store, create=False, max_event_bytes=settings.max_event_bytes) as log:
                yield _FileWriter(log)
    finally:
        if joined:
            import ray

            ray.shutdown()


def _running_council(settings: Settings) -> LogWriter | None:
    """The running council's writer, if its store actor runs; :class:`AnotherLog` if it writes another log."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    from actors import names
    from actors.store_client import StoreClient

    try:
        store = ray.get_actor(names.STORE, namespace=names.NAMESPACE)
    except ValueError:
        return None
    try:
        running_url = str(ray.get(store.url.remote(), timeout=ANSWER_S))
    except (GetTimeoutError, RayActorError):
        raise StoreUnavailable(f"the council's store actor did not answer within {ANSWER_S:.0f} s; check "
                               "`council status`, or stop the council with `council down`") from None
    same_log(settings, running_url)
    try:
        council = ray.get_actor(names.COUNCIL, namespace=names.NAMESPACE)
    except ValueError:
        council = None
    return _CouncilWriter(StoreClient(store, patience=ANSWER_S), council)


class _FileWriter:
    """Appends to the log file: only when no council runs."""

    def __init__(self, log: EventStore) -> None:
        self.log = log

    def append(self, intents: Sequence[Intent]) -> None:
        _raise_refusal(self.log.append_many(intents))

    def revoke(self, intents: Sequence[Intent], warrant_id: str, reason: str, by: str) -> None:
        self.append(intents)


class _CouncilWriter:
    """Appends through the running council's store actor; revokes through its council actor when that runs."""

    def __init__(self, client: StoreClient, council: ActorHandle[Any] | None) -> None:
        self.client, self.council = client, council

    def append(self, intents: Sequence[Intent]) -> None:
        _raise_refusal(self.client.append_many(intents))

    def revoke(self, intents: Sequence[Intent], warrant_id: str, reason: str, by: str) -> None:
        """Revoke through the council actor (it decides again from the log it folds), and say which route it took."""
        if self.council is None:
            self.append(intents)
            out.print("appended by the council's store actor (no council actor runs)", markup=False)
            return
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            answer: Any = ray.get(self.council.revoke.remote(warrant_id, reason, by), timeout=ANSWER_S)
        except (GetTimeoutError, RayActorError):
            raise CouncilUnavailable(f"the council actor did not answer within {ANSWER_S:.0f} s; check "
                                     "`council status`, then run the command again") from None
        out.print(f"revoked by the running council's actor ({int(answer)} warrant(s) revoked by it now)", markup=False)


def _raise_refusal(results: Sequence[AppendResult | CouncilError]) -> None:
    """Raise the first refusal among ``results``: a stream that moved as :class:`LogMoved`, which says what to do."""
    for result in results:
        if isinstance(result, ConcurrencyError):
            raise LogMoved(f"{result.stream} changed while this command decided (it is at version {result.actual} "
                           "now), so its decision was not appended; run the command again to decide from the log "
                           "as it is now") from result
        if isinstance(result, CouncilError):
            raise result
