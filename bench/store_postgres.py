"""Concurrent appends to PostgreSQL: our store against the ``eventsourcing`` PostgreSQL recorder.

What it measures
    16 writers (``--writers``) each append ``--commits`` batches of ``--batch`` events, every
    batch to a new stream, while one tailing reader in this process follows the log from
    position 1. Reported: commits per second and events per second over the wall time from the
    moment all writers start together to the moment the last one finishes, by

    * **ours, direct**: 16 writer *processes*, each ``open_store("postgresql://...").append(stream,
      [TaskSubmitted, ...], expected_version=0)`` (validates, encodes, ids; the server function
      takes the table lock, hashes into the SHA-256 chain and stores, one transaction per append),
      read back by ``store.subscribe()`` (LISTEN/NOTIFY);
    * **ours, group commit**: the store actor's half of the system's write path. The store actor's
      :class:`actors.combiner.Combiner` turns the appends of callers that arrive together into one
      transaction (``EventStore.append_many``). Here 16 writer *threads* in one process submit to
      one store through that Combiner, as the actor's threads do — no Ray: what the store can do;
    * **ours, through the store actor**: the system's real write path, end to end. A private Ray
      (``ray.init(address="local")`` with its own ``RAY_TMPDIR``, shut down at the end) runs the
      :class:`actors.store_actor.StoreActor`, created from the spec ``cluster.system.plan`` gives
      it for a PostgreSQL log, and 16 writer *actors* (``num_cpus=0``, one process each), each
      appending through its own :class:`actors.store_client.StoreClient` as an agent does: on the
      store actor's node, through its door (:mod:`actors.store_door`, a local socket; the event
      ids given by the client), the store actor combining concurrent appends into one
      transaction. The writers start together at a wall-clock instant they all wait for, after
      each has reached the store actor once. Only with ``--ray`` (it adds about a minute at the
      default counts);
    * **ours, store actor, Ray only**: the same, every append a Ray call — the path of writers on
      other nodes than the store actor's (``StoreClient(door=False)``). Only with ``--ray``;
    * **Ray alone (nothing stored)**: the same writer actors and StoreClients calling an actor with
      the store actor's options that answers every append at once and stores nothing — what Ray's
      call per append costs on this machine, the most *any* store could give through Ray here.
      Also only with ``--ray``; the report gives the store actor's rate as a fraction of it;
    * **the reference**: 16 writer processes, ``eventsourcing.postgres.PostgresApplicationRecorder.insert_events``
      with ``StoredEvent``s encoded from the same objects by the same msgspec encoder (its table lock,
      one transaction per batch), read back by ``select_notifications`` in a loop;
    * **horizon (no chain)**: the other way to read gap-free, measured, not shipped. 16 writer
      processes insert each batch in one transaction with *no lock*: positions come from an
      identity column, and each row records its transaction id. The reader reads only rows whose
      transaction id is below its snapshot's ``xmin`` (every transaction below it has ended, so
      nothing can appear there later), in ``(xid, position)`` order with an ``(xid, position)``
      cursor. Nothing serialises the writers, so PostgreSQL flushes many commits in one fsync.
      What it cannot do is our ledger: an event's hash covers its position and its predecessor's
      hash, and a transaction cannot see an uncommitted predecessor (which may still abort) — so
      the chain forces one appender at a time through its commit, whatever assigns positions.
      Its rows carry no hash; its positions are unique but read out of order (and have holes
      where a transaction aborts), which our ``Recorder`` contract does not allow.

How, and why it is fair
    One server this script starts (``tests/support/postgres_server.py``: a fresh ``initdb``,
    ``fsync`` and ``synchronous_commit`` on), a fresh database per run, the same writers, the same
    payload bytes, each system first in turn over ``--repeat`` runs (median reported). Opening
    connections, creating tables and starting the store actor happen before the start barrier.
    With ``--ray`` the private Ray (its processes idle but alive) runs throughout, beside every system.

Checked after every run, or the script exits 1: the reader saw exactly positions (notification
ids) 1..N, in order (horizon: each of 1..N exactly once, in its cursor's order) — **zero
skipped**, none repeated; the log holds N events; ours verifies.

``--profile`` adds where one append's time goes, with one writer and no contention (batch 1):
wall time and client CPU per append of ours (one round trip to ``council_append``), of ours
deciding in Python (``_append_group``: two round trips, the lock held across both and the
client's hashing), and of the reference; and ``council_append`` alone with and without the disk
flush (``synchronous_commit``), beside a bare round trip — the lock is held for the former.

Usage::

    python bench/store_postgres.py [--writers 16] [--commits 200] [--batch 1,10] [--repeat 3] [--profile] [--ray]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests" / "support")]  # events, and the throwaway server

import msgspec  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

from events import AppendResult, open_store  # noqa: E402
from events.catalogue import TaskSubmitted  # noqa: E402

SYSTEMS = ("ours", "ours-group", "ours-actor", "ours-ray", "ray-alone", "eventsourcing", "horizon")
OURS = ("ours", "ours-group", "ours-actor", "ours-ray")
ON_RAY = ("ours-actor", "ours-ray", "ray-alone")
TARGET = 2000  # commits/s, issue 19
LABELS = {"ours": "ours, direct", "ours-group": "ours, group commit", "ours-actor": "ours, through the store actor",
          "ours-ray": "ours, store actor, Ray only", "ray-alone": "Ray alone (nothing stored)",
          "eventsourcing": "eventsourcing", "horizon": "horizon (no chain)"}
_HORIZON_TABLE = (
    "CREATE TABLE horizon_events (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "xid xid8 NOT NULL DEFAULT pg_current_xact_id(), stream text NOT NULL, version int NOT NULL, "
    "event_id bytea NOT NULL UNIQUE, type text NOT NULL, payload bytea NOT NULL, UNIQUE (stream, version))",
    "CREATE INDEX horizon_events_xid ON horizon_events (xid, position)",
)
_HORIZON_INSERT = ("INSERT INTO horizon_events (stream, version, event_id, type, payload) "
                   "SELECT %s, v, i, %s, p FROM unnest(%s::int[], %s::bytea[], %s::bytea[]) AS u(v, i, p)")
# Rows below the statement's snapshot xmin only: every transaction there has ended, so no row can appear
# behind the cursor later. The cursor is (xid, position); positions within it come in any order. (The
# xid goes out as text, under another name: ORDER BY xid would otherwise sort that text column.)
_HORIZON_READ = (
    "SELECT xid::text AS xid_text, position FROM horizon_events WHERE (xid, position) > (%s::xid8, %s) "
    "AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid, position LIMIT 1000"
)
TOPIC = f"{TaskSubmitted.__module__}:{TaskSubmitted.__qualname__}"
_ENCODE = msgspec.json.Encoder(order="deterministic").encode


def payloads(writer: int, commit: int, batch: int) -> list[TaskSubmitted]:
    return [TaskSubmitted(task_id=f"task-{writer:02d}-{commit:05d}-{v:03d}", capability="code.generate", priority=1,
                          request_id=f"req-{writer:02d}", inputs={"prompt": "Parse ISO-8601 durations.", "v": v},
                          title="Parse ISO-8601 durations") for v in range(batch)]


def writer(system: str, url: str, w: int, commits: int, batch: int, barrier: Any, done: Any) -> None:
    """One writer process: open, wait for the others, append ``commits`` batches, report."""
    objects = [payloads(w, c, batch) for c in range(commits)]
    if system == "horizon":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            for c, events in enumerate(objects):
                conn.execute(_HORIZON_INSERT, (f"w{w:02d}-{c:05d}", TaskSubmitted.type_name,
                                               list(range(1, len(events) + 1)),
                                               [uuid.uuid4().bytes for _ in events], [_ENCODE(p) for p in events]),
                             prepare=True)
    elif system == "ours":
        store = open_store(url)
        barrier.wait()
        for c, events in enumerate(objects):
            store.append(f"w{w:02d}-{c:05d}", events, expected_version=0)
        store.close()
    else:
        from eventsourcing.persistence import StoredEvent

        recorder, datastore = reference(url)
        barrier.wait()
        for events in objects:
            oid = uuid.uuid4()
            recorder.insert_events([StoredEvent(originator_id=oid, originator_version=v, topic=TOPIC,
                                                state=_ENCODE(p)) for v, p in enumerate(events, 1)])
        datastore.close()
    done.put(w)


def reference(url: str) -> tuple[Any, Any]:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    datastore = PostgresDatastore(str(info["dbname"]), str(info["host"]), str(info["port"]), str(info["user"]), "")
    return PostgresApplicationRecorder(datastore), datastore


@dataclass(frozen=True)
class Run:
    system: str
    batch: int
    commits: int
    events: int
    seconds: float
    problems: tuple[str, ...]
    transactions: int = 0
    """Through the store actor: the transactions its appends took (fewer than the commits when it combined them)."""


def group_writers(url: str, writers: int, commits: int, batch: int, barrier: Any, done: Any) -> None:
    """``writers`` threads appending through one store's Combiner, as the store actor's callers do."""
    from actors.combiner import Combiner

    store = open_store(url)
    combiner = Combiner(store.append_many)

    def one(w: int) -> None:
        objects = [payloads(w, c, batch) for c in range(commits)]
        barrier.wait()
        for c, events in enumerate(objects):
            [result] = combiner.submit([(f"w{w:02d}-{c:05d}", events, 0)])
            if not isinstance(result, AppendResult):
                raise SystemExit(f"an append was refused: {result}")
        done.put(w)

    threads = [threading.Thread(target=one, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()


class ActorWriter:
    """One writer as an agent is one: a Ray actor appending through its own StoreClient to the store actor."""

    def __init__(self, w: int) -> None:
        self.w = w
        self.client: Any = None
        self.objects: list[list[TaskSubmitted]] = []

    def prepare(self, store: Any, commits: int, batch: int, door: bool) -> None:
        """Build this run's payloads and reach ``store`` once (Ray connects the two processes before the clock)."""
        from actors.store_client import StoreClient

        self.client = StoreClient(store, door=door)
        self.objects = [payloads(self.w, c, batch) for c in range(commits)]
        self.client.head()

    def append(self, start_at: float) -> float:
        """From wall-clock time ``start_at`` (the barrier every writer waits for), append; when it finished."""
        time.sleep(max(0.0, start_at - time.time()))
        for c, events in enumerate(self.objects):
            self.client.append(f"w{self.w:02d}-{c:05d}", events, expected_version=0)
        return time.time()


class NoStore:
    """Ray alone: the store actor's methods as its writers call them, answered at once and nothing stored.

    Created with the store actor's own options (its concurrency groups), so the writers' path is
    the same — StoreClient, its Combiner, a Ray call per append with the same arguments — less
    the store: the most any store could give through Ray on this machine.
    """

    def __init__(self) -> None:
        self.appends = 0

    def append_many(self, wire: bytes) -> bytes:
        from actors.store_wire import results_to_wire

        calls = msgspec.msgpack.decode(wire)  # only counted: reading events is the store's work
        self.appends += len(calls)
        return results_to_wire([AppendResult(positions=tuple(range(1, len(events) + 1)), stream_version=len(events))
                                for _, events, _ in calls])

    def head(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"appends": self.appends, "flushes": self.appends}


class PrivateRay:
    """A Ray of this script's own with ``writers`` :class:`ActorWriter` actors; :meth:`close` shuts it down.

    ``address="local"`` always starts a new Ray, so it never joins another; its files go under a new
    temporary ``RAY_TMPDIR``. It is not hidden: a process elsewhere on the machine calling
    ``ray.init("auto")`` with no address file falls back to any running Ray and may join this one,
    and anyone's ``ray stop`` ends it (the run then dies with "Failed to connect to GCS").
    """

    def __init__(self, writers: int) -> None:
        import ray

        self.files = tempfile.mkdtemp(prefix="rb-")  # short: Ray's socket paths live under it
        os.environ["RAY_TMPDIR"] = self.files
        # Ray's workers import this checkout's events and actors, not whichever the environment installed.
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(_ROOT), os.environ.get("PYTHONPATH"))))
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        actor = ray.remote(num_cpus=0)(ActorWriter)
        self.writers = [actor.remote(w) for w in range(writers)]
        self.runs = 0

    def store_actor(self, url: str) -> Any:
        """A store actor on ``url``, created as ``cluster.system.plan`` creates it for a PostgreSQL log.

        The same spec (class, arguments, options: detached, in the council namespace, preferring this
        node); only its name has this run's number, since each run has its own database.
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from actors import names
        from actors.specs import ActorSpec
        from actors.store_actor import StoreActor

        self.runs += 1
        node = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        store = ActorSpec(f"{names.STORE}-{self.runs}", StoreActor, (url, 1 << 20),  # System's max_event_bytes
                          options={"scheduling_strategy": node}).start()
        ray.get(store.url.remote())  # constructed: the log is open
        return store

    def no_store(self) -> Any:
        """A :class:`NoStore` with the store actor's options (its concurrency groups), on this node."""
        import ray

        from actors.store_actor import StoreActor

        groups = StoreActor._default_options["concurrency_groups"]
        methods = {"append_many": "append", "head": "poll", "stats": "poll"}  # as StoreActor's
        cls = type("NoStore", (NoStore,), {name: ray.method(concurrency_group=group)(getattr(NoStore, name))
                                          for name, group in methods.items()})
        store = ray.remote(num_cpus=0, concurrency_groups=groups)(cls).remote()
        ray.get(store.head.remote())
        return store

    def close(self) -> None:
        import ray

        ray.shutdown()
        shutil.rmtree(self.files, ignore_errors=True)


def actor_writers(cluster: PrivateRay, url: str | None, writers: int, commits: int, batch: int,
                  door: bool = True) -> tuple[float, int]:
    """``writers`` of ``cluster``'s writers append through a new store actor on ``url`` (None: a :class:`NoStore`),
    through its door or (``door=False``) a Ray call each.

    Returns the seconds they took and the transactions the store actor wrote for them.
    """
    import ray

    store = cluster.store_actor(url) if url is not None else cluster.no_store()
    chosen = cluster.writers[:writers]
    ray.get([w.prepare.remote(store, commits, batch, door and url is not None) for w in chosen])
    start_at = time.time() + 0.5  # every writer has its call by then
    finished = [w.append.remote(start_at) for w in chosen]
    seconds = max(ray.get(finished, timeout=600)) - start_at
    transactions = ray.get(store.stats.remote())["flushes"]
    ray.kill(store)
    return seconds, transactions


def tail(system: str, url: str, total: int, seen: list[int], stop: threading.Event) -> None:
    """Follow the log from position 1 until ``total`` events were seen (or ``stop``), recording positions."""
    if system == "horizon":
        import psycopg

        cursor: tuple[str, int] = ("0", 0)
        with psycopg.connect(url, autocommit=True) as conn:
            while len(seen) < total and not stop.is_set():
                rows = conn.execute(_HORIZON_READ, cursor, prepare=True).fetchall()
                seen.extend(r[1] for r in rows)
                if rows:
                    cursor = rows[-1]
                else:
                    time.sleep(0.005)
        return
    if system in OURS:
        with open_store(url) as store, store.subscribe(batch_size=1000) as sub:
            while len(seen) < total and not stop.is_set():
                seen.extend(e.position for e in sub.poll(timeout=0.2))
        return
    recorder, datastore = reference(url)
    last = 0
    while len(seen) < total and not stop.is_set():
        got = recorder.select_notifications(last + 1, 1000)
        seen.extend(n.id for n in got)
        if got:
            last = got[-1].id
        else:
            time.sleep(0.005)
    datastore.close()


def run(system: str, url: str, writers: int, commits: int, batch: int, cluster: PrivateRay | None = None) -> Run:
    if system == "ray-alone":  # nothing stored, so nothing to read or verify
        assert cluster is not None, "Ray alone runs on a PrivateRay"
        seconds, _ = actor_writers(cluster, None, writers, commits, batch)
        return Run(system, batch, writers * commits, writers * commits * batch, seconds, ())
    if system in OURS:
        open_store(url).close()  # tables created before the clock
    elif system == "horizon":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for statement in _HORIZON_TABLE:
                conn.execute(statement)  # type: ignore[arg-type]  # our own constant text
    else:
        recorder, datastore = reference(url)
        recorder.create_table()
        datastore.close()
    total = writers * commits * batch
    transactions = 0
    seen: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=tail, args=(system, url, total, seen, stop))
    if system in ON_RAY:
        assert cluster is not None, "the store actor's writers run on a PrivateRay"
        reader.start()
        try:
            door = system == "ours-actor"
            seconds, transactions = actor_writers(cluster, url, writers, commits, batch, door)
        except BaseException:
            stop.set()  # the reader would wait for events that never come
            raise
        finally:
            reader.join(timeout=60)
    else:
        ctx = mp.get_context("spawn")
        barrier, done = ctx.Barrier(writers + 1), ctx.Queue()
        if system == "ours-group":
            procs = [ctx.Process(target=group_writers, args=(url, writers, commits, batch, barrier, done))]
        else:
            procs = [ctx.Process(target=writer, args=(system, url, w, commits, batch, barrier, done))
                     for w in range(writers)]
        for p in procs:
            p.start()
        reader.start()
        barrier.wait(timeout=300)
        start = time.perf_counter()
        for _ in range(writers):
            done.get(timeout=600)
        seconds = time.perf_counter() - start
        for p in procs:
            p.join(timeout=60)
        reader.join(timeout=60)
    stop.set()
    problems = []
    if system == "horizon":
        if sorted(seen) != list(range(1, total + 1)):
            problems.append(f"horizon, batch {batch}: the reader saw {len(seen)} rows, {len(set(seen))} distinct, "
                            f"of {total}")
    elif seen != list(range(1, total + 1)):
        skipped = len(set(range(1, total + 1)) - set(seen))
        problems.append(f"{system}, batch {batch}: the reader saw {len(seen)} of {total} ({skipped} skipped), "
                        "or out of order")
    if system in OURS:
        with open_store(url) as store:
            report = store.verify()
            if not report.ok or report.head != total:
                problems.append(f"{system}, batch {batch}: verify {report}")
    elif system == "eventsourcing":
        recorder, datastore = reference(url)
        if recorder.max_notification_id() != total:
            problems.append(f"eventsourcing, batch {batch}: max id {recorder.max_notification_id()} != {total}")
        datastore.close()
    return Run(system, batch, writers * commits, total, seconds, tuple(problems), transactions)


def profile(server: Any, n: int = 400) -> list[str]:
    """Per-append costs with one writer and no contention (see ``--profile``)."""
    import psycopg

    from events import postgres_append
    from events.postgres import PostgresRecorder

    def per(seconds: float) -> str:
        return f"{seconds / n * 1e3:.2f} ms"

    lines = []
    objects = [payloads(0, c, 1) for c in range(n)]
    for label, python_path in (("ours (council_append, 1 round trip)", False),
                               ("ours deciding in Python (2 round trips)", True)):
        with open_store(server.new_database("prof")) as store:
            recorder = store._recorder
            assert isinstance(recorder, PostgresRecorder)
            decide = recorder._append_group
            store.append("warm", objects[0])
            wall, cpu = time.perf_counter(), time.process_time()
            for c, events in enumerate(objects):
                if python_path:  # what the store did before council_append: encode, then decide in Python
                    batch = [(f"s{c}", 0, store._prepare(f"s{c}", events, 0))]
                    recorder._run(lambda conn, b=batch, d=decide: d(conn, b))  # type: ignore[misc]
                else:
                    store.append(f"s{c}", events, expected_version=0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            lines.append(f"{label}: {per(wall)} wall, {per(cpu)} client CPU per append")
    recorder_ref, datastore = reference(server.new_database("prof"))
    recorder_ref.create_table()
    from eventsourcing.persistence import StoredEvent

    wall, cpu = time.perf_counter(), time.process_time()
    for events in objects:
        recorder_ref.insert_events([StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic=TOPIC,
                                                state=_ENCODE(p)) for p in events])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    datastore.close()
    lines.append(f"eventsourcing: {per(wall)} wall, {per(cpu)} client CPU per append")
    alone = {}
    for sync in ("on", "off"):
        url = server.new_database("prof")
        with open_store(url) as store, psycopg.connect(url, autocommit=True) as conn:
            groups = [[(f"x{c}", 0, store._prepare(f"x{c}", events, 0))] for c, events in enumerate(objects)]
            conn.execute(f"SET synchronous_commit = {sync}")  # type: ignore[arg-type]  # one of two constants
            start = time.perf_counter()
            for group in groups:
                conn.execute(postgres_append.CALL, postgres_append.arguments(group, time.time_ns() // 1000),
                             prepare=True)
            alone[sync] = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(n):
                conn.execute("SELECT 1", prepare=True)
            alone["trip"] = time.perf_counter() - start
    lines.append(f"council_append alone: {per(alone['on'])} with the disk flush, {per(alone['off'])} without; "
                 f"a bare round trip {per(alone['trip'])}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--commits", type=int, default=200, help="commits per writer per run; default 200")
    parser.add_argument("--batch", default="1,10", help="events per commit, comma-separated; default 1,10")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also: where one append's time goes (see above)")
    parser.add_argument("--ray", action="store_true",
                        help="also measure ours through the store actor on a private Ray (adds about a minute)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")]
    systems = SYSTEMS if args.ray else tuple(s for s in SYSTEMS if s not in ON_RAY)
    results: dict[tuple[str, int], list[Run]] = {}
    cluster = PrivateRay(args.writers) if args.ray else None
    try:
        with PostgresServer.start() as server:
            version, profiled = measure(server, systems, batches, args, cluster, results)
    finally:
        if cluster is not None:
            cluster.close()
    import platform
    from importlib.metadata import version as dist

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; PostgreSQL {version} (fresh initdb, fsync on, "
          f"synchronous_commit on, loopback TCP); psycopg {dist('psycopg')}, eventsourcing {dist('eventsourcing')}"
          + (f", ray {dist('ray')}" if args.ray else ""))
    actors = "; 'through the store actor': Ray actors, each with a StoreClient" if args.ray else ""
    print(f"{args.writers} writers x {args.commits} commits (processes; 'group commit': threads through one "
          f"store's Combiner{actors}), one tailing reader; median of {args.repeat}")
    print(f"{'batch':>5}  {'system':<29}  {'commits/s':>9}  {'events/s':>9}  {'vs ref':>6}")
    problems = [p for runs in results.values() for r in runs for p in r.problems]
    for batch in batches:
        rate = {system: statistics.median(r.commits / r.seconds for r in results[(system, batch)])
                for system in systems}
        for system in systems:
            print(f"{batch:>5}  {LABELS[system]:<29}  {rate[system]:>9,.0f}  {rate[system] * batch:>9,.0f}  "
                  f"{rate[system] / rate['eventsourcing']:>6.2f}")
        for system in (s for s in systems if s in OURS):
            met = rate[system] >= max(TARGET, rate["eventsourcing"])
            verdict = "met" if met else "NOT met"
            if not met and system == "ours-ray" and rate["ray-alone"] < TARGET:
                verdict += f" ({TARGET:,} is beyond Ray alone here: {rate['ray-alone']:,.0f})"
            print(f"{batch:>5}  target ({TARGET:,} commits/s and the reference's rate), {LABELS[system]}: {verdict}")
        for system in (s for s in ("ours-actor", "ours-ray") if s in systems):
            combined = statistics.median(r.commits / r.transactions for r in results[(system, batch)])
            print(f"{batch:>5}  {LABELS[system]}: {combined:.1f} commits per transaction (median)"
                  + (f", {rate[system] / rate['ray-alone']:.2f} of Ray alone's rate" if system == "ours-ray" else ""))
    if not args.ray:
        print("(not measured: ours through the store actor, the system's real write path — Ray's call per append "
              "included; --ray adds it)")
    if profiled:
        print("\none writer, batch 1, no contention:", *profiled, sep="\n  ")
    if problems:
        print("\nVERIFICATION FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("verification: ok (each tailing reader saw positions 1..N in order — horizon: each exactly once — "
          "zero skipped; ours verified)")
    return 0


def measure(server: Any, systems: Sequence[str], batches: list[int], args: argparse.Namespace,
            cluster: PrivateRay | None, results: dict[tuple[str, int], list[Run]]) -> tuple[str, list[str]]:
    """Every system at every batch size, ``args.repeat`` times, into ``results``; the server's version, the profile."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        version = row[0] if row else "?"
    for system in systems:  # warm-up, not reported
        run(system, server.new_database("warm"), 2, 20, 1, cluster)
    for repeat in range(args.repeat):
        for i, batch in enumerate(batches):
            order = systems if (repeat + i) % 2 == 0 else systems[::-1]
            for system in order:
                results.setdefault((system, batch), []).append(
                    run(system, server.new_database(system[:4]), args.writers, args.commits, batch, cluster))
    return version, profile(server) if args.profile else []


if __name__ == "__main__":
    sys.exit(main())
