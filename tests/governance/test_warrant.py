"""Warrants: signatures, narrowing, chains — including hypothesis properties."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.catalogue import Budget
from governance import globs, warrant
from governance.errors import WarrantError
from governance.keys import Keyring, SigningKey

KEY = SigningKey.generate("council")
NOW = time.time()
ROOT = warrant.Warrant(warrant_id="w-root", holder="a1", role="coder", actions=("file.*", "command.run"),
                       resources=("src/**", "tests/**", "docs/*.md"), environments=("staging", "dev-*"),
                       budget=Budget(tokens=1000, money=5.0, wall_time_s=600, actions=20), not_before=NOW - 10,
                       expires_at=NOW + 3600, policy_hash="a" * 64, issuer=KEY.public.fingerprint)
ROOT_ISSUED = warrant.issue(KEY, ROOT)


def lookup(table: dict):  # type: ignore[no-untyped-def]
    return lambda wid: table.get(wid)


def test_an_issued_warrant_verifies_and_round_trips() -> None:
    assert warrant.verify(ROOT_ISSUED, KEY.public) == ROOT
    assert warrant.verify_chain(ROOT_ISSUED, lookup({}), KEY.public, NOW) == [ROOT]


def test_a_warrant_from_another_key_or_for_another_issuer_is_refused(tmp_path: Path) -> None:
    other = Keyring(tmp_path).signer(Keyring(tmp_path).new("other").name)
    with pytest.raises(WarrantError, match="signing key"):
        warrant.issue(other, ROOT)
    with pytest.raises(WarrantError, match="not by this council"):
        warrant.verify(ROOT_ISSUED, other.public)


@pytest.mark.parametrize(("change", "why"), [
    ({"actions": ("file.*", "deploy")}, "action 'deploy'"),
    ({"resources": ("**",)}, "resource '\\*\\*'"),
    ({"resources": ("docs/**",)}, "resource 'docs/\\*\\*'"),
    ({"environments": ("production",)}, "environment 'production'"),
    ({"budget": Budget(tokens=2000, money=1.0, wall_time_s=60, actions=1)}, "budget tokens"),
    ({"budget": Budget(money=1.0, wall_time_s=60, actions=1)}, "budget tokens unlimited"),
    ({"expires_at": NOW + 7200}, "expires after"),
    ({"not_before": NOW - 100}, "valid before"),
])
def test_a_child_that_would_widen_its_parent_is_not_issued(change: dict, why: str) -> None:
    with pytest.raises(WarrantError, match=why):
        warrant.attenuate(KEY, ROOT, warrant_id="w-child", **change)


def test_a_chain_of_narrowings_verifies_and_revoking_any_link_stops_the_leaf() -> None:
    child = warrant.attenuate(KEY, ROOT, warrant_id="w-child", holder="a2", resources=("src/**",), actions=("file.write",))
    grandchild = warrant.attenuate(KEY, warrant.decode(child), warrant_id="w-gc", resources=("src/app/*.py",))
    table = {"w-root": ROOT_ISSUED, "w-child": child}
    assert [w.warrant_id for w in warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW)] == ["w-gc", "w-child",
                                                                                                        "w-root"]
    for revoked in ("w-root", "w-child", "w-gc"):
        with pytest.raises(WarrantError, match="revoked"):
            warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW,
                                 revoked=lambda wid, r=revoked: "stolen" if wid == r else None)
    with pytest.raises(WarrantError, match="not in the log"):
        warrant.verify_chain(grandchild, lookup({"w-child": child}), KEY.public, NOW)
    with pytest.raises(WarrantError, match="expired"):
        warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW + 4000)


# -- properties -------------------------------------------------------------------------------

SEGMENT = st.sampled_from(["src", "tests", "docs", "app", "*", "*.md", "x.py", "**"])
GLOB = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join).filter(lambda g: _valid(g))
PATH = st.lists(st.sampled_from(["src", "tests", "docs", "app", "a.md", "x.py", "y"]), min_size=1, max_size=5).map("/".join)
ACTION = st.sampled_from(["file.read", "file.write", "file.*", "command.run", "deploy", "*", "git.commit"])
ENV = st.sampled_from(["staging", "dev-1", "dev-*", "production", "*"])
LIMIT = st.one_of(st.none(), st.integers(0, 3000))


def _valid(pattern: str) -> bool:
    try:
        globs.check_glob(pattern)
        return True
    except Exception:
        return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTION, min_size=1, max_size=3), resources=st.lists(GLOB, min_size=1, max_size=3),
       environments=st.lists(ENV, min_size=1, max_size=2), tokens=LIMIT, actions_limit=LIMIT,
       expires=st.floats(-100, 7200), probes=st.lists(st.tuples(ACTION, PATH, ENV), min_size=1, max_size=8))
def test_attenuation_never_widens(actions, resources, environments, tokens, actions_limit, expires, probes) -> None:  # type: ignore[no-untyped-def]
    try:
        issued = warrant.attenuate(KEY, ROOT, warrant_id="w-h", actions=tuple(actions), resources=tuple(resources),
                                   environments=tuple(environments),
                                   budget=Budget(tokens=tokens, money=1.0, wall_time_s=60, actions=actions_limit),
                                   expires_at=NOW + expires)
    except WarrantError:
        return  # refused: nothing was widened
    child = warrant.decode(issued)
    for action, path, env in probes:
        if "*" in action or "*" in env:
            continue  # probes are concrete actions
        if warrant.covers_action(child, action, path, env) is None:
            assert warrant.covers_action(ROOT, action, path, env) is None, (action, path, env)
    for field in ("tokens", "money", "wall_time_s", "actions"):
        assert getattr(child.budget, field) <= getattr(ROOT.budget, field)
    assert child.expires_at <= ROOT.expires_at


@settings(max_examples=300)
@given(where=st.integers(0, 10_000), bit=st.integers(0, 7), part=st.sampled_from(["warrant", "signature"]))
def test_any_single_byte_change_to_a_signed_warrant_fails_verification(where: int, bit: int, part: str) -> None:
    data = bytearray(getattr(ROOT_ISSUED, part))
    data[where % len(data)] ^= 1 << bit
    import msgspec
    tampered = msgspec.structs.replace(ROOT_ISSUED, **{part: bytes(data)})
    with pytest.raises(WarrantError):
        warrant.verify(tampered, KEY.public)
