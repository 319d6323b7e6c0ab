"""Reproducible builds of a real (tiny) hatchling project, and the signed SLSA provenance that describes them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from governance_support import BOX

from actors.tools.build import BuildFailed, BuildResult, build, compare
from actors.tools.workspace import Workspace
from governance import provenance
from governance.keys import SigningKey
from governance.provenance import ProvenanceError

COMMITTED_AT = 1714564800  # 2024-05-01T12:00:00Z

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0"
"""

# A build hook that puts fresh random bytes into the package: no two builds can be identical.
RANDOM_HOOK = """\
import os
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        fd, path = tempfile.mkstemp()
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(16).hex())
        build_data["force_include"][path] = "{name}/stamp.txt"
"""


def make_project(directory: Path, name: str, *, package: str | None = None, hook: bool = False,
                 commit: bool = True) -> None:
    """A project with one module in src/<package>, committed at COMMITTED_AT."""
    directory.mkdir(parents=True, exist_ok=True)
    pyproject = PYPROJECT.format(name=name) + ("\n[tool.hatch.build.hooks.custom]\n" if hook else "")
    (directory / "pyproject.toml").write_text(pyproject)
    (directory / "src" / (package or name)).mkdir(parents=True)
    (directory / "src" / (package or name) / "__init__.py").write_text("VALUE = 1\n")
    if hook:
        (directory / "hatch_build.py").write_text(RANDOM_HOOK.format(name=name))
    if commit:
        git(directory, "init", "-q")
        git(directory, "add", "-A")
        git(directory, "commit", "-q", "-m", "initial")


def git(directory: Path, *args: str) -> str:
    stamp = f"@{COMMITTED_AT} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
                          cwd=directory, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, BuildResult]:
    """The tiny project at the workspace root, built (twice) into dist/ once for the whole module."""
    root = tmp_path_factory.mktemp("workspace")
    make_project(root, "tinypkg")
    workspace = Workspace(root)
    (root / "dist").mkdir()
    (root / "dist" / "stale-0.1.tar.gz").write_bytes(b"from an earlier build")
    return workspace, build(workspace, box=BOX)


# ---- builds ----------------------------------------------------------------------------------------------------


def test_a_clean_project_builds_reproducibly_into_dist(built: tuple[Workspace, BuildResult]) -> None:
    workspace, result = built
    assert result.reproducible and result.mismatches == []
    assert sorted(a.name for a in result.artifacts) == ["tinypkg-1.0-py2.py3-none-any.whl", "tinypkg-1.0.tar.gz"]
    assert sorted(p.name for p in (workspace.root / "dist").iterdir()) == sorted(a.name for a in result.artifacts)
    for artifact in result.artifacts:
        on_disk = (workspace.root / artifact.path).read_bytes()
        assert artifact.path == f"dist/{artifact.name}"
        assert artifact.sha256 == hashlib.sha256(on_disk).hexdigest() and artifact.size == len(on_disk)


def test_the_build_time_is_the_commit_time_and_the_commit_is_head(built: tuple[Workspace, BuildResult]) -> None:
    workspace, result = built
    assert result.source_date_epoch == COMMITTED_AT
    with tarfile.open(workspace.root / "dist" / "tinypkg-1.0.tar.gz") as sdist:
        assert {member.mtime for member in sdist.getmembers()} == {COMMITTED_AT}
    assert result.commit == git(workspace.root, "rev-parse", "HEAD").strip()
    assert result.command[1:5] == ["-m", "build", "--no-isolation", "--outdir"] and result.command[-1] == "."
    assert len(result.output_digest) == 64 and result.duration_s > 0


def test_a_build_leaves_nothing_in_the_project_but_its_artefacts(built: tuple[Workspace, BuildResult]) -> None:
    workspace, _ = built
    assert git(workspace.root, "status", "--porcelain", "--untracked-files=all").split("\n")[:-1] == [
        "?? dist/tinypkg-1.0-py2.py3-none-any.whl", "?? dist/tinypkg-1.0.tar.gz"]


def test_a_build_that_differs_each_time_is_reported_with_the_artefacts_that_differ(tmp_path: Path) -> None:
    make_project(tmp_path / "proj", "noisypkg", hook=True)
    result = build(Workspace(tmp_path), cwd="proj", out="artefacts", box=BOX)
    assert not result.reproducible
    assert result.mismatches == ["noisypkg-1.0-py2.py3-none-any.whl", "noisypkg-1.0.tar.gz"]
    assert [a.path for a in result.artifacts] == ["artefacts/noisypkg-1.0-py2.py3-none-any.whl",
                                                  "artefacts/noisypkg-1.0.tar.gz"]
    assert sorted(p.name for p in (tmp_path / "artefacts").iterdir()) == [a.name for a in result.artifacts]


def test_compare_names_what_differs_or_is_missing_on_either_side() -> None:
    assert compare({"a": "1", "b": "2"}, {"a": "1", "b": "2"}) == []
    assert compare({"a": "1", "b": "2", "c": "3"}, {"a": "9", "b": "2", "d": "4"}) == ["a", "c", "d"]


def test_a_broken_pyproject_fails_with_the_reason_and_leaves_out_empty(tmp_path: Path) -> None:
    make_project(tmp_path, "brokenpkg")
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "old-1.0.tar.gz").write_bytes(b"old")
    with pytest.raises(BuildFailed, match=r"(?s)building \. failed.*pyproject\.toml"):
        build(Workspace(tmp_path), box=BOX)
    assert list((tmp_path / "dist").iterdir()) == []


def test_a_build_that_fails_halfway_leaves_no_half_built_artefacts(tmp_path: Path) -> None:
    # The sdist builds, then the wheel fails: hatchling finds no package named like the project.
    make_project(tmp_path, "halfpkg", package="elsewhere")
    with pytest.raises(BuildFailed, match=r"(?s)no directory that matches the name of your project.*build_wheel"):
        build(Workspace(tmp_path), box=BOX)
    assert list((tmp_path / "dist").iterdir()) == []


def test_without_a_repository_the_build_time_must_be_given(tmp_path: Path) -> None:
    make_project(tmp_path, "loosepkg", commit=False)
    with pytest.raises(BuildFailed, match="source_date_epoch"):
        build(Workspace(tmp_path), box=BOX)
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("out", [".", "proj", "/tmp/dist", "../dist"])
def test_out_may_not_be_the_project_or_outside_the_workspace(tmp_path: Path, out: str) -> None:
    make_project(tmp_path / "proj", "safepkg")
    with pytest.raises(Exception, match=r"out=|absolute|outside"):
        build(Workspace(tmp_path), cwd="proj", out=out, box=BOX)
    assert (tmp_path / "proj" / "pyproject.toml").exists()


# ---- provenance ------------------------------------------------------------------------------------------------


def make_statement(workspace: Workspace, result: BuildResult) -> dict:
    return provenance.statement(
        {a.name: a.sha256 for a in reversed(result.artifacts)},
        builder_id="https://agent-council.invalid/builder/v1",
        build_type="https://agent-council.invalid/python-build/v1",
        external_parameters={"cwd": ".", "out": "dist"},
        internal_parameters={"SOURCE_DATE_EPOCH": result.source_date_epoch},
        dependencies=[{"uri": f"git+file://{workspace.root}", "digest": {"gitCommit": result.commit}}],
        invocation_id="task-1", started_on="2024-05-01T12:00:00Z", finished_on="2024-05-01T12:00:03Z")


@pytest.fixture(scope="module")
def signed(built: tuple[Workspace, BuildResult]) -> tuple[dict, dict, SigningKey]:
    statement = make_statement(*built)
    key = SigningKey.generate("builder")
    return statement, provenance.sign(statement, key), key


def test_the_statement_is_slsa_v1_provenance_of_the_artefacts(built: tuple[Workspace, BuildResult]) -> None:
    workspace, result = built
    statement = make_statement(workspace, result)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (workspace.root / "dist").iterdir()}
    assert statement["subject"] == [{"name": n, "digest": {"sha256": on_disk[n]}} for n in sorted(on_disk)]
    definition, run = statement["predicate"]["buildDefinition"], statement["predicate"]["runDetails"]
    assert definition["buildType"] == "https://agent-council.invalid/python-build/v1"
    head = git(workspace.root, "rev-parse", "HEAD").strip()
    assert definition["resolvedDependencies"] == [{"uri": f"git+file://{workspace.root}",
                                                   "digest": {"gitCommit": head}}]
    assert definition["internalParameters"] == {"SOURCE_DATE_EPOCH": COMMITTED_AT}
    assert run["builder"] == {"id": "https://agent-council.invalid/builder/v1"}
    assert run["metadata"] == {"invocationId": "task-1", "startedOn": "2024-05-01T12:00:00Z",
                               "finishedOn": "2024-05-01T12:00:03Z"}
    assert run["byproducts"] == []


@pytest.mark.parametrize("change", [{"subjects": {}}, {"subjects": {"a.whl": "abc"}}, {"started_on": "yesterday"},
                                    {"finished_on": "2024-05-01T12:00:00"}, {"builder_id": ""},
                                    {"external_parameters": {"x": object()}}])
def test_a_statement_with_bad_arguments_is_refused(change: dict) -> None:
    arguments = dict(subjects={"a.whl": "0" * 64}, builder_id="b", build_type="t", external_parameters={},
                     internal_parameters={}, dependencies=[], invocation_id="i", started_on="2024-05-01T12:00:00Z",
                     finished_on="2024-05-01T12:00:00+02:00")
    provenance.statement(**arguments)
    with pytest.raises(ProvenanceError):
        provenance.statement(**{**arguments, **change})


def test_pae_matches_the_dsse_specification() -> None:
    assert provenance.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_a_signed_statement_verifies_and_comes_back_whole(signed: tuple[dict, dict, SigningKey]) -> None:
    statement, envelope, key = signed
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    body = base64.b64decode(envelope["payload"])
    assert body == json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    assert envelope["signatures"][0]["keyid"] == key.public.fingerprint
    assert key.public.verify(base64.b64decode(envelope["signatures"][0]["sig"]),
                             provenance.pae(envelope["payloadType"], body))
    assert provenance.verify(envelope, key.public) == statement
    keys = [SigningKey.generate("other").public, key.public]
    assert provenance.verify(json.loads(json.dumps(envelope)), keys) == statement


def flip(data: str, index: int) -> str:
    raw = bytearray(base64.b64decode(data))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", ["payload-start", "payload-end", "sig"])
def test_a_one_byte_change_breaks_the_signature(signed: tuple[dict, dict, SigningKey], where: str) -> None:
    _, envelope, key = signed
    if where == "sig":
        first = envelope["signatures"][0]
        altered = {**envelope, "signatures": [{**first, "sig": flip(first["sig"], 7)}]}
    else:
        altered = {**envelope, "payload": flip(envelope["payload"], 10 if where == "payload-start" else -3)}
    with pytest.raises(ProvenanceError, match="does not verify"):
        provenance.verify(altered, key.public)


def test_a_signature_by_another_key_is_refused(signed: tuple[dict, dict, SigningKey]) -> None:
    statement, envelope, _ = signed
    other = SigningKey.generate("other")
    with pytest.raises(ProvenanceError, match="unknown keys"):
        provenance.verify(envelope, other.public)
    impostor = provenance.sign(statement, other)
    impostor["signatures"][0]["keyid"] = envelope["signatures"][0]["keyid"]
    with pytest.raises(ProvenanceError, match="does not verify"):
        provenance.verify(impostor, signed[2].public)


@pytest.mark.parametrize("envelope, reason", [
    ([], "not a JSON object"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30="}, "malformed"),
    ({"payloadType": "application/json", "payload": "e30=", "signatures": []}, "payloadType"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}, "no signatures"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "%%%", "signatures": [{"sig": "AA=="}]}, "base64"),
    ({"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"keyid": "k"}]}, "malformed"),
])
def test_a_malformed_envelope_is_refused_with_the_reason(signed: tuple[dict, dict, SigningKey], envelope: object,
                                                         reason: str) -> None:
    with pytest.raises(ProvenanceError, match=reason):
        provenance.verify(envelope, signed[2].public)  # type: ignore[arg-type]


def test_a_signed_payload_that_is_not_a_statement_is_refused() -> None:
    key = SigningKey.generate("builder")
    body = b'{"_type":"https://in-toto.io/Statement/v0.1","subject":[]}'
    signature = base64.b64encode(key.sign(provenance.pae(provenance.PAYLOAD_TYPE, body))).decode()
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(body).decode(),
                "signatures": [{"keyid": key.public.fingerprint, "sig": signature}]}
    with pytest.raises(ProvenanceError, match="not an in-toto Statement v1"):
        provenance.verify(envelope, key.public)
    with pytest.raises(ProvenanceError, match="not an in-toto Statement v1"):
        provenance.sign({"_type": "x"}, key)


def test_check_subjects_catches_a_changed_missing_or_extra_artefact(built: tuple[Workspace, BuildResult],
                                                                      signed: tuple[dict, dict, SigningKey]) -> None:
    workspace, result = built
    statement = provenance.verify(signed[1], signed[2].public)
    files = {a.name: (workspace.root / a.path).read_bytes() for a in result.artifacts}
    provenance.check_subjects(statement, files)
    wheel = next(a.name for a in result.artifacts if a.name.endswith(".whl"))
    changed = {**files, wheel: files[wheel][:-1] + bytes([files[wheel][-1] ^ 1])}
    with pytest.raises(ProvenanceError, match=f"artefact {wheel} does not match"):
        provenance.check_subjects(statement, changed)
    with pytest.raises(ProvenanceError, match=f"artefact {wheel} is named in the provenance but missing"):
        provenance.check_subjects(statement, {k: v for k, v in files.items() if k != wheel})
    with pytest.raises(ProvenanceError, match=r"artefact extra\.txt is not covered"):
        provenance.check_subjects(statement, {**files, "extra.txt": b""})
