"""Warrants: signatures, narrowing, chains — including hypothesis properties."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.catalogue import Budget
from governance import warrant
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
    child = warrant.attenuate(KEY, ROOT, warrant_id="w-child", holder="a2", resources=("src/**",),
                              actions=("file.write",))
    grandchild = warrant.attenuate(KEY, warrant.decode(child), warrant_id="w-gc", resources=("src/app/*.py",))
    table = {"w-root": ROOT_ISSUED, "w-child": child}
    chain = warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW)
    assert [w.warrant_id for w in chain] == ["w-gc", "w-child", "w-root"]
    for revoked in ("w-root", "w-child", "w-gc"):
        with pytest.raises(WarrantError, match="revoked"):
            warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW,
                                 revoked=lambda wid, r=revoked: "stolen" if wid == r else None)
    with pytest.raises(WarrantError, match="not in the log"):
        warrant.verify_chain(grandchild, lookup({"w-child": child}), KEY.public, NOW)
    with pytest.raises(WarrantError, match="expired"):
        warrant.verify_chain(grandchild, lookup(table), KEY.public, NOW + 4000)


# -- properties -------------------------------------------------------------------------------
#
# Children are made BY NARROWING the root (each field drawn inside the parent's), so every one
# must be issued and every probe it covers the root must cover; children made by widening one
# field must all be refused. Each property is run from a plain test that then checks how much it
# proved, so it fails if its examples stop reaching their assertions.

NARROWER_ACTIONS = {"file.*": ["file.*", "file.read", "file.write", "file.delete", "file.w*", "file.re*"],
                    "command.run": ["command.run"]}
NARROWER_ENVIRONMENTS = {"staging": ["staging"], "dev-*": ["dev-*", "dev-1", "dev-eu", "dev-eu-*", "dev-1*"]}
LITERAL = st.sampled_from(["app", "lib", "x.py", "test_a.py", "a.md", "readme.md", "ab.md"])
SEGMENT = st.one_of(LITERAL, st.sampled_from(["*", "*.py", "test_*", "a?", "[ab]*", "*.md", "?.md"]))


@st.composite
def narrower_glob(draw: st.DrawFn, parent: str) -> str:
    """A glob every path of which ``parent`` matches, by construction."""
    if parent.endswith("/**"):  # anything under the directory, the directory itself included
        base = parent[:-3]
        tail = draw(st.lists(st.one_of(SEGMENT, st.just("**")), max_size=3))
        return "/".join([base, *tail])
    assert parent == "docs/*.md"
    return "docs/" + draw(st.sampled_from(["*.md", "a*.md", "readme.md", "?.md", "[ab]*.md", "test_*.md", "a?.md"]))


def _subset(choices: dict[str, list[str]]) -> st.SearchStrategy[tuple[str, ...]]:
    flat = [child for children in choices.values() for child in children]
    return st.lists(st.sampled_from(flat), min_size=1, max_size=3, unique=True).map(tuple)


@st.composite
def narrowing(draw: st.DrawFn) -> dict[str, Any]:
    """Fields for a child of ROOT, each at or inside the parent's."""
    parents = draw(st.lists(st.sampled_from(ROOT.resources), min_size=1, max_size=3))
    not_before = draw(st.floats(ROOT.not_before, ROOT.expires_at - 2))
    limit = ROOT.budget
    return {
        "actions": draw(_subset(NARROWER_ACTIONS)),
        "resources": tuple(dict.fromkeys(draw(narrower_glob(p)) for p in parents)),
        "environments": draw(_subset(NARROWER_ENVIRONMENTS)),
        "budget": Budget(tokens=draw(st.integers(0, limit.tokens or 0)), money=draw(st.floats(0, limit.money or 0)),
                         wall_time_s=draw(st.floats(0, limit.wall_time_s or 0)),
                         actions=draw(st.integers(0, limit.actions or 0))),
        "not_before": not_before,
        "expires_at": draw(st.floats(not_before + 1, ROOT.expires_at)),
    }


CONCRETE_ACTION = st.sampled_from(["file.read", "file.write", "file.delete", "file.rename", "command.run", "deploy",
                                   "git.commit", "files.write"])
CONCRETE_PATH = st.lists(st.sampled_from(["src", "tests", "docs", "app", "lib", "x.py", "test_a.py", "a.md",
                                          "readme.md", "ab.md", "y"]), min_size=1, max_size=5).map("/".join)
CONCRETE_ENV = st.sampled_from(["staging", "dev-1", "dev-eu", "dev-eu-1", "dev-10", "production", "staging-2"])
FILLER = st.text("abq", max_size=2)


@st.composite
def instance(draw: st.DrawFn, pattern: str) -> str:
    """A concrete name or path that ``pattern`` (as the narrowing strategies write them) may well match."""
    out: list[str] = []
    for segment in pattern.split("/"):
        if segment == "**":
            out += draw(st.lists(st.sampled_from(["app", "q"]), max_size=2))
            continue
        text = segment.replace("[ab]", "?")
        out.append("".join(draw(FILLER) if c == "*" else draw(st.sampled_from("ab")) if c == "?" else c for c in text))
    return "/".join(p for p in out if p) or "src"


def probe(fields: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, str]]:
    """A concrete (action, path, environment), each aimed at the child's patterns or drawn from anywhere."""
    def aimed(patterns: tuple[str, ...], anywhere: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        inside = st.sampled_from(patterns).flatmap(instance)
        return st.one_of(anywhere, inside, inside)  # two parts in three aimed at the child
    return st.tuples(aimed(fields["actions"], CONCRETE_ACTION), aimed(fields["resources"], CONCRETE_PATH),
                     aimed(fields["environments"], CONCRETE_ENV))


PROVED = {"children": 0, "covered": 0, "refused": 0}
"""What the properties below proved: children issued, probes a child covered (and so the parent), widenings refused."""


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(fields=narrowing(), data=st.data())
def _narrowing_never_widens(fields: dict[str, Any], data: st.DataObject) -> None:
    issued = warrant.attenuate(KEY, ROOT, warrant_id="w-h", **fields)  # a narrowing is always issued
    child = warrant.verify(issued, KEY.public)
    assert warrant.widening(ROOT, child) is None
    assert warrant.verify_chain(issued, lookup({"w-root": ROOT_ISSUED}), KEY.public, child.not_before) == [child, ROOT]
    PROVED["children"] += 1
    for action, path, env in data.draw(st.lists(probe(fields), min_size=10, max_size=25)):
        if warrant.covers_action(child, action, path, env) is None:
            assert warrant.covers_action(ROOT, action, path, env) is None, (action, path, env)
            PROVED["covered"] += 1


def test_a_child_made_by_narrowing_is_issued_and_covers_nothing_its_parent_does_not() -> None:
    before = dict(PROVED)
    _narrowing_never_widens()
    assert PROVED["children"] - before["children"] >= 200
    assert PROVED["covered"] - before["covered"] >= 600


WIDER = {
    "actions": st.sampled_from(["deploy", "*", "file*", "files.*", "command.*", "git.commit"]).map(lambda a: (a,)),
    "resources": st.sampled_from(["**", "docs/**", "docs/*", "src*/**", "*/**", "lib/*.py", "docs/*.md/**",
                                  "**/*.py", "srcs/**", "docs/*.mdx"]).map(lambda r: (r,)),
    "environments": st.sampled_from(["production", "*", "dev*", "staging-*", "dev"]).map(lambda e: (e,)),
    "budget": st.sampled_from(["tokens", "money", "wall_time_s", "actions"]).flatmap(
        lambda f: st.one_of(st.just(None), st.floats(0.001, 10) if f == "money" else st.integers(1, 1000)).map(
            lambda extra: (f, extra))),
    "expires_at": st.floats(ROOT.expires_at + 0.001, ROOT.expires_at + 7200),
    "not_before": st.floats(ROOT.not_before - 3600, ROOT.not_before - 0.001),
}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(fields=narrowing(), field=st.sampled_from(sorted(WIDER)), data=st.data())
def _widening_is_refused(fields: dict[str, Any], field: str, data: st.DataObject) -> None:
    wider = data.draw(WIDER[field])
    if field == "budget":
        name, extra = wider  # None: unlimited, wider than any limit
        above = None if extra is None else getattr(ROOT.budget, name) + extra
        fields["budget"] = msgspec.structs.replace(fields["budget"], **{name: above})
    elif field in ("expires_at", "not_before"):
        fields[field] = wider
    else:
        fields[field] = (*fields[field], *wider)
    with pytest.raises(WarrantError, match="would widen its parent w-root"):
        warrant.attenuate(KEY, ROOT, warrant_id="w-h", **fields)
    PROVED["refused"] += 1


def test_a_child_made_by_widening_any_one_field_is_refused() -> None:
    before = PROVED["refused"]
    _widening_is_refused()
    assert PROVED["refused"] - before >= 200


@settings(max_examples=300)
@given(where=st.integers(0, 10_000), bit=st.integers(0, 7), part=st.sampled_from(["warrant", "signature"]))
def test_any_single_byte_change_to_a_signed_warrant_fails_verification(where: int, bit: int, part: str) -> None:
    data = bytearray(getattr(ROOT_ISSUED, part))
    data[where % len(data)] ^= 1 << bit
    tampered = msgspec.structs.replace(ROOT_ISSUED, **{part: bytes(data)})
    with pytest.raises(WarrantError):
        warrant.verify(tampered, KEY.public)
