"""Appending to the PostgreSQL log in one round trip: the server seals and stores a group.

Why. Positions and the ledger's hash chain are assigned under the commit table's lock (see
``_LOCK`` in :mod:`events.postgres`), held until the commit is on disk. Whatever runs while the
lock is held runs one appender at a time, so it bounds the whole cluster's append rate. When the
client reads the head, hashes in Python and writes back, the lock is held across two round trips
and the client's CPU time — and a writer process that the scheduler preempts while holding it
stalls every other writer. ``council_append`` does that work inside the server instead: one
statement takes the lock, reads the head, checks the expected versions, hashes each event into the
chain, stores commits, ids and the type index, and notifies; the lock is held for the server's
work and the commit's disk flush only.

What the client still does, before the lock: it encodes each event's constant parts in
MessagePack once — ``bodies``, a pair per event: (event id, type, schema version) and (metadata,
payload) — and the stream names. The server splices in the position, version, ``recorded_at`` and previous
hash, so the canonical bytes (:func:`events.ledger.canonical_bytes`) and the stored commit blob are
byte for byte what :func:`events.recorder.seal_batch` and :func:`events.commits.pack` produce
(``council_mp_uint`` encodes an unsigned integer in MessagePack's smallest form, as msgspec does).

The fast path only: when any of the group's ids is already stored (a retry, or a conflict), an
expected version does not match, or a stream or id appears twice in the group, the function
writes nothing and returns NULL, and the recorder decides the group in Python
(:func:`events.recorder.plan_append`), which names the error or recognises the retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from events.envelope import ANY, NO_STREAM, AppendResult
from events.recorder import AppendRequest

FUNCTIONS = (
    r"""CREATE OR REPLACE FUNCTION council_mp_uint(n bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE  -- not STRICT: PostgreSQL inlines it into the caller's expression
    AS $$
    SELECT CASE WHEN n < 128 THEN substring(int2send(n::smallint) from 2)
                WHEN n < 256 THEN '\xcc'::bytea || substring(int2send(n::smallint) from 2)
                WHEN n < 65536 THEN '\xcd'::bytea || substring(int4send(n::int) from 3)
                WHEN n < 4294967296 THEN '\xce'::bytea || substring(int8send(n) from 5)
                ELSE '\xcf'::bytea || int8send(n) END $$""",
    r"""CREATE OR REPLACE FUNCTION council_mp_array(n int) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE  -- not STRICT: PostgreSQL inlines it into the caller's expression
    AS $$
    SELECT CASE WHEN n < 16 THEN substring(int2send((144 + n)::smallint) from 2)
                WHEN n < 65536 THEN '\xdc'::bytea || substring(int4send(n) from 3)
                ELSE '\xdd'::bytea || int4send(n) END $$""",
    r"""CREATE OR REPLACE FUNCTION council_append(streams text[], expected bigint[], sizes int[],
        packed_streams bytea[], ids bytea[], types text[], bodies bytea[], now_us bigint) RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE  -- VOLATILE: each query inside takes a fresh snapshot (see _LOCK)
    AS $$
    DECLARE
        head_position bigint; head_hash bytea; head_at bigint; at bytea; current bigint; version bigint;
        pos bigint; h bytea; pair bytea[]; parts bytea[]; r int := 0; remaining int := 0;
        versions bigint[] := '{}'; c_last bigint[] := '{}'; c_first bigint[] := '{}'; c_version bigint[] := '{}';
        c_hash bytea[] := '{}'; c_events bytea[] := '{}'; recorded bigint; id bytea;
    BEGIN
        -- THE ordering invariant: see _LOCK in events/postgres.py. Taken before the head is read.
        LOCK TABLE council_commits IN EXCLUSIVE MODE;
        -- One primary-key probe per id: a cached generic plan for "= ANY(ids)" may scan the whole
        -- table — under the lock — when the table's statistics are older than its growth, and
        -- planning it afresh for every call (EXECUTE) costs more than the probes.
        FOREACH id IN ARRAY ids LOOP
            IF EXISTS (SELECT 1 FROM council_event_ids WHERE event_id = id) THEN
                RETURN NULL;
            END IF;
        END LOOP;
        SELECT last_position, last_hash, recorded_at INTO head_position, head_hash, head_at
            FROM council_commits ORDER BY last_position DESC LIMIT 1;
        IF head_position IS NULL THEN
            head_position := 0; head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000';
            head_at := 0;
        END IF;
        recorded := greatest(now_us, head_at);  -- recorded_at never goes backwards along positions
        at := council_mp_uint(recorded);
        pos := head_position; h := head_hash;
        -- One pass over the group's events (FOREACH walks the array once; indexing a parameter array
        -- element by element would rescan it); ``remaining`` counts down the current request's events.
        FOREACH pair SLICE 1 IN ARRAY bodies LOOP
            IF remaining = 0 THEN
                r := r + 1; remaining := sizes[r];
                SELECT COALESCE(MAX(last_version), 0) INTO current FROM council_commits WHERE stream = streams[r];
                IF expected[r] >= 0 AND expected[r] <> current THEN
                    RETURN NULL;
                END IF;
                version := current;
                parts := ARRAY[council_mp_array(sizes[r])];  -- joined once: concatenating in the loop is quadratic
            END IF;
            pos := pos + 1; version := version + 1; remaining := remaining - 1;
            h := sha256('\x009a'::bytea || council_mp_uint(pos) || packed_streams[r] || council_mp_uint(version)
                        || pair[1] || at || pair[2] || '\xc420'::bytea || h);
            parts := parts || ('\x96'::bytea || pair[1] || pair[2] || '\xc420'::bytea || h);
            IF remaining = 0 THEN
                c_last := c_last || pos; c_first := c_first || (pos - sizes[r] + 1); c_version := c_version || version;
                c_hash := c_hash || h; versions := versions || current;
                c_events := c_events
                    || (SELECT string_agg(p, ''::bytea ORDER BY o) FROM unnest(parts) WITH ORDINALITY AS u(p, o));
            END IF;
        END LOOP;
        INSERT INTO council_commits SELECT l, f, s, v, recorded, hh, ev
            FROM unnest(c_last, c_first, streams, c_version, c_hash, c_events) AS u(l, f, s, v, hh, ev);
        INSERT INTO council_event_ids SELECT * FROM unnest(ids, ARRAY(SELECT generate_series(head_position + 1, pos)));
        INSERT INTO council_commit_types SELECT DISTINCT t.type, c.last
            FROM unnest(types) WITH ORDINALITY AS t(type, k)
            JOIN unnest(c_first, c_last) AS c(first, last) ON head_position + t.k BETWEEN c.first AND c.last;
        PERFORM pg_notify('council_events_' || current_schema(), pos::text);
        RETURN ARRAY[head_position] || versions;
    END $$""",
)

CALL = "SELECT council_append(%s, %s, %s, %s, %s, %s, %s, %s)"

_pack = msgspec.msgpack.Encoder().encode


def arguments(requests: Sequence[AppendRequest], now_us: int) -> tuple[Any, ...] | None:
    """``CALL``'s parameters for a group, or None when only the Python path can decide it (see above)."""
    streams = [r[0] for r in requests]
    ids = [e[0] for r in requests for e in r[2]]
    if len(set(streams)) != len(streams) or len(set(ids)) != len(ids):
        return None
    # A tuple's MessagePack is its array header (one byte below 16 items) and its items' encodings.
    return (streams,
            [-1 if r[1] is ANY else 0 if r[1] is NO_STREAM else r[1] for r in requests],
            [len(r[2]) for r in requests],
            [_pack(s) for s in streams],
            ids,
            [e[1] for r in requests for e in r[2]],
            [[_pack((e[0], e[1], e[2]))[1:], _pack((e[3], e[4]))[1:]] for r in requests for e in r[2]],
            now_us)


def results(requests: Sequence[AppendRequest], returned: Sequence[int]) -> tuple[list[AppendResult], int]:
    """The results of a group the server stored (``returned``: the head before it, each stream's prior version)
    and the new head."""
    position = returned[0]
    out = []
    for (_, _, batch), before in zip(requests, returned[1:], strict=True):
        n = len(batch)
        out.append(AppendResult(tuple(range(position + 1, position + n + 1)), before + n))
        position += n
    return out, position
