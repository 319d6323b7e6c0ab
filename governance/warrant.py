"""Warrants: the council's signed, narrowing grants of authority.

A warrant says who may act (``holder``, an agent), how (``actions``), on what (``resources``,
path globs; ``environments``), how much (``budget``), and when (``not_before`` .. ``expires_at``),
under which policy, and which warrant it was carved from (``parent_id``). The council signs its
canonical bytes with the council key (purpose ``"warrant"``). A child warrant can only narrow its
parent: every action, resource and environment it names must be covered by the parent's, every
budget limit must be at most the parent's, and its validity must lie inside the parent's. That is
checked when a child is made (:func:`attenuate`) and again whenever a chain is verified
(:func:`verify_chain`), so a warrant that widens its parent is refused even if it was signed.

Anyone with the council's public key and the log can verify a warrant and its chain offline.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from events.catalogue import Budget, WarrantIssued
from governance import globs
from governance.errors import WarrantError
from governance.keys import PublicKey, SigningKey
from governance.signing import canonical, framed

PURPOSE = "warrant"
MAX_CHAIN = 16
"""The deepest chain :func:`verify_chain` follows; a longer one is refused (and cannot loop)."""


class Warrant(msgspec.Struct, frozen=True, kw_only=True):
    """A grant of authority, as signed. Every field is covered by the council's signature."""

    warrant_id: str
    holder: str
    role: str
    actions: tuple[str, ...]
    resources: tuple[str, ...] = ("**",)
    environments: tuple[str, ...] = ("*",)
    budget: Budget = Budget()
    not_before: float
    expires_at: float
    policy_hash: str
    issuer: str
    parent_id: str | None = None
    request_id: str | None = None
    task_id: str | None = None


def issue(key: SigningKey, warrant: Warrant) -> WarrantIssued:
    """Sign ``warrant`` with the council key; the ``warrant.issued`` payload to append to ``warrant-<id>``.

    Refuses (:class:`WarrantError`) a warrant whose ``issuer`` is not ``key``'s fingerprint, or whose
    patterns are not valid.
    """
    if warrant.issuer != key.public.fingerprint:
        raise WarrantError(f"warrant {warrant.warrant_id} names issuer {warrant.issuer}, but the signing key is "
                           f"{key.public.fingerprint}")
    _check_patterns(warrant)
    if warrant.expires_at <= warrant.not_before:
        raise WarrantError(f"warrant {warrant.warrant_id} expires before it becomes valid")
    data = canonical(warrant)
    return WarrantIssued(warrant_id=warrant.warrant_id, holder=warrant.holder, task_id=warrant.task_id,
                         request_id=warrant.request_id, parent_id=warrant.parent_id, warrant=data,
                         signature=key.sign(_signed(data)), issuer=warrant.issuer)


def decode(issued: WarrantIssued) -> Warrant:
    """The warrant inside a ``warrant.issued`` payload (not verified: see :func:`verify`)."""
    try:
        return msgspec.msgpack.decode(issued.warrant, type=Warrant)
    except msgspec.DecodeError as exc:
        raise WarrantError(f"warrant {issued.warrant_id} cannot be read ({exc}); it is not one this council "
                           "issued") from None


def verify(issued: WarrantIssued, council: PublicKey) -> Warrant:
    """The warrant, if ``council`` signed exactly these bytes and the envelope agrees with them; else
    :class:`WarrantError`."""
    if issued.issuer != council.fingerprint:
        raise WarrantError(f"warrant {issued.warrant_id} was issued by key {issued.issuer}, not by this council "
                           f"({council.fingerprint})")
    signed = (council.raw, issued.signature, issued.warrant)
    warrant = _VERIFIED.get(signed)
    if warrant is None:
        if not council.verify(issued.signature, _signed(issued.warrant)):
            raise WarrantError(f"warrant {issued.warrant_id} is forged: its signature does not verify with the "
                               "council key")
        warrant = decode(issued)
        if len(_VERIFIED) >= _VERIFIED_KEPT:
            _VERIFIED.clear()
        _VERIFIED[signed] = warrant
    fields = ("warrant_id", "holder", "parent_id", "task_id", "request_id", "issuer")
    if any(getattr(issued, f) != getattr(warrant, f) for f in fields):
        raise WarrantError(f"warrant {issued.warrant_id} is forged: its envelope does not match the signed warrant")
    return warrant


_VERIFIED: dict[tuple[bytes, bytes, bytes], Warrant] = {}
"""Warrants whose signature verified, by (council key, signature, signed bytes). Those three decide the verdict of
an Ed25519 check alone, so a warrant is verified once per process, not once per action; validity, revocation and
the envelope are still checked every time."""
_VERIFIED_KEPT = 4096


def widening(parent: Warrant, child: Warrant) -> str | None:
    """Why ``child`` is not a narrowing of ``parent``, or None if it is (every limit within the parent's)."""
    if child.parent_id != parent.warrant_id:
        return f"it names parent {child.parent_id}, not {parent.warrant_id}"
    for action in child.actions:
        if not any(covers_name(p, action) for p in parent.actions):
            return f"action {action!r} is not granted by the parent"
    for resource in child.resources:
        if not any(globs.covers(p, resource) for p in parent.resources):
            return f"resource {resource!r} is outside the parent's resources"
    for env in child.environments:
        if not any(covers_name(p, env) for p in parent.environments):
            return f"environment {env!r} is not granted by the parent"
    for field in ("tokens", "money", "wall_time_s", "actions"):
        mine, theirs = getattr(child.budget, field), getattr(parent.budget, field)
        if theirs is not None and (mine is None or mine > theirs):
            return f"budget {field} {'unlimited' if mine is None else mine} exceeds the parent's {theirs}"
    if child.not_before < parent.not_before:
        return "it becomes valid before its parent"
    if child.expires_at > parent.expires_at:
        return "it expires after its parent"
    if child.role != parent.role:
        return f"role {child.role!r} differs from the parent's {parent.role!r}"
    return None


def attenuate(key: SigningKey, parent: Warrant, **narrower: object) -> WarrantIssued:
    """A child of ``parent``, signed, with some fields narrowed (``warrant_id`` required; the rest default to the
    parent's).

    Raises :class:`WarrantError` if any field would widen the parent; nothing is issued then.
    """
    if "warrant_id" not in narrower:
        raise WarrantError("a child warrant needs its own warrant_id")
    fields = {f: getattr(parent, f) for f in Warrant.__struct_fields__}
    fields.update(narrower, parent_id=parent.warrant_id)
    try:
        child = Warrant(**fields)
    except TypeError as exc:
        raise WarrantError(f"cannot narrow warrant {parent.warrant_id}: {exc}") from None
    reason = widening(parent, child)
    if reason is not None:
        raise WarrantError(f"warrant {child.warrant_id} would widen its parent {parent.warrant_id}: {reason}")
    return issue(key, child)


def verify_chain(issued: WarrantIssued, lookup: Callable[[str], WarrantIssued | None], council: PublicKey,
                 now: float, revoked: Callable[[str], str | None] = lambda _: None) -> list[Warrant]:
    """Verify ``issued`` and every ancestor; return the chain, the warrant itself first.

    Each link must be signed by ``council``, narrow its parent, be valid at ``now`` and not be
    revoked (``revoked(id)`` gives a reason, or None). ``lookup(id)`` finds an ancestor's
    ``warrant.issued``. Raises :class:`WarrantError` naming the first link that fails.
    """
    chain: list[Warrant] = []
    current: WarrantIssued | None = issued
    while current is not None:
        if len(chain) >= MAX_CHAIN:
            raise WarrantError(f"warrant {issued.warrant_id} has a chain longer than {MAX_CHAIN} links")
        warrant = verify(current, council)
        if chain and widening(warrant, chain[-1]) is not None:
            raise WarrantError(f"warrant {chain[-1].warrant_id} widens its parent {warrant.warrant_id}: "
                               f"{widening(warrant, chain[-1])}")
        reason = revoked(warrant.warrant_id)
        if reason is not None:
            which = "it was" if not chain else f"its ancestor {warrant.warrant_id} was"
            raise WarrantError(f"warrant {issued.warrant_id} is revoked: {which} revoked ({reason})")
        if now < warrant.not_before:
            raise WarrantError(f"warrant {warrant.warrant_id} is not valid until {warrant.not_before:.0f} "
                               f"(now {now:.0f})")
        if now >= warrant.expires_at:
            raise WarrantError(f"warrant {warrant.warrant_id} expired at {warrant.expires_at:.0f} (now {now:.0f})")
        chain.append(warrant)
        if warrant.parent_id is None:
            return chain
        current = lookup(warrant.parent_id)
        if current is None:
            raise WarrantError(f"warrant {warrant.warrant_id} names parent {warrant.parent_id}, which is not in "
                               "the log")
    return chain


def covers_action(warrant: Warrant, action: str, resource: str | None, environment: str | None) -> str | None:
    """Why ``warrant`` does not cover this action, or None if it does. ``resource`` is normalised first."""
    if not any(globs.match_name(action, p) for p in warrant.actions):
        return f"warrant {warrant.warrant_id} does not grant {action}"
    if resource is not None:
        path = globs.normalize_path(resource)
        if not any(globs.match(path, p) for p in warrant.resources):
            return f"{path!r} is outside the scope of warrant {warrant.warrant_id} ({', '.join(warrant.resources)})"
    if environment is not None and not any(globs.match_name(environment, p) for p in warrant.environments):
        return f"environment {environment!r} is outside the scope of warrant {warrant.warrant_id}"
    return None


def _check_patterns(warrant: Warrant) -> None:
    for patterns, check in ((warrant.actions, globs.check_name_pattern), (warrant.resources, globs.check_glob),
                            (warrant.environments, globs.check_name_pattern)):
        for pattern in patterns:
            check(pattern)


def _signed(data: bytes) -> bytes:
    return framed(PURPOSE, data)


def covers_name(parent: str, child: str) -> bool:
    """Whether every name matching pattern ``child`` matches pattern ``parent`` (sound, conservative)."""
    if parent == "*" or parent == child:
        return True
    if not any(c in child for c in "*?["):
        return globs.match_name(child, parent)
    head = parent[:-1]
    return parent.endswith("*") and not any(c in head for c in "*?[") and child.startswith(head)
