"""Build provenance: SLSA v1 provenance in an in-toto Statement v1, signed in a DSSE envelope.

A statement names its subjects (artefact file names with their SHA-256) and says how they were
built (``predicate.buildDefinition``) and by whom and when (``predicate.runDetails``), with the
field names of https://slsa.dev/provenance/v1. Its payload bytes are canonical JSON (sorted keys,
no spaces, ASCII), and a signature covers DSSE's pre-authentication encoding of the payload type
and those bytes, so a signature over provenance can never be presented as one over anything else.
A verifier parses the payload only after a signature over it has verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from typing import Any

from governance.errors import GovernanceError
from governance.keys import PublicKey, SigningKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]+$")


class ProvenanceError(GovernanceError):
    """Provenance is malformed, its signature does not verify, or an artefact does not match it."""


def statement(subjects: dict[str, str], *, builder_id: str, build_type: str, external_parameters: dict[str, Any],
              internal_parameters: dict[str, Any], dependencies: list[dict[str, Any]], invocation_id: str,
              started_on: str, finished_on: str, byproducts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An in-toto Statement v1 whose predicate is SLSA v1 provenance for ``subjects`` (name -> SHA-256 hex).

    Subjects are sorted by name. ``dependencies`` and ``byproducts`` are SLSA ResourceDescriptors
    (e.g. ``{"uri": "git+file:///repo", "digest": {"gitCommit": sha}}``); ``started_on`` and
    ``finished_on`` are RFC 3339 timestamps with a time zone. The result is plain JSON data (a
    fresh copy of every argument). Raises :class:`ProvenanceError` if an argument is not valid.
    """
    if not isinstance(subjects, dict) or not subjects:
        raise ProvenanceError("provenance needs at least one subject: give {artefact name: sha256 hex}")
    for name, digest in subjects.items():
        if not isinstance(name, str) or not name:
            raise ProvenanceError(f"subject name {name!r} is not a non-empty string")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ProvenanceError(f"subject {name!r} has digest {digest!r}; give its SHA-256 as 64 lowercase hex "
                                  "digits")
    for field, value in (("builder_id", builder_id), ("build_type", build_type), ("invocation_id", invocation_id)):
        if not isinstance(value, str) or not value:
            raise ProvenanceError(f"{field} must be a non-empty string (a URI for builder_id and build_type)")
    for field, value in (("started_on", started_on), ("finished_on", finished_on)):
        _check_timestamp(field, value)
    for field, descriptors in (("dependencies", dependencies), ("byproducts", byproducts or [])):
        if not isinstance(descriptors, list) or not all(isinstance(d, dict) for d in descriptors):
            raise ProvenanceError(f"{field} must be a list of ResourceDescriptor objects (dicts)")
    result = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": subjects[name]}} for name in sorted(subjects)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": external_parameters,
                "internalParameters": internal_parameters,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {"invocationId": invocation_id, "startedOn": started_on, "finishedOn": finished_on},
                "byproducts": byproducts or [],
            },
        },
    }
    # The round trip through canonical JSON both copies the arguments and proves the statement is signable.
    copied: dict[str, Any] = json.loads(canonical(result))
    return copied


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj``: sorted keys, compact separators, ASCII; NaN refused."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ProvenanceError(f"provenance must be plain JSON data (str, number, bool, None, list, dict): "
                              f"{exc}") from None


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding: the exact bytes a signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def sign(statement: dict[str, Any], signer: SigningKey) -> dict[str, Any]:
    """A DSSE envelope holding ``statement`` as canonical JSON, signed by ``signer``.

    The signature's ``keyid`` is the signer's fingerprint. Raises :class:`ProvenanceError` if
    ``statement`` is not an in-toto Statement v1.
    """
    _check_statement(statement)
    body = canonical(statement)
    signature = signer.sign(pae(PAYLOAD_TYPE, body))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": signer.public.fingerprint, "sig": base64.b64encode(signature).decode()}]}


def verify(envelope: dict[str, Any], keys: PublicKey | list[PublicKey], *,
           predicate_type: str | None = PREDICATE_TYPE) -> dict[str, Any]:
    """The statement inside ``envelope``, once a signature over it verifies with one of ``keys``.

    A signature counts only if its ``keyid`` is the fingerprint of a given key and it verifies over
    the DSSE encoding of the payload with that key. The statement must be an in-toto Statement v1,
    with ``predicate_type`` (unless that is None). Anything else raises :class:`ProvenanceError`
    saying why: malformed envelope, wrong payload type, unknown key, bad signature, not a statement.
    """
    if not isinstance(envelope, dict):
        raise ProvenanceError("the provenance envelope is not a JSON object; give the DSSE envelope sign() produced")
    payload_type, payload, signatures = envelope.get("payloadType"), envelope.get("payload"), envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload, str) or not isinstance(signatures, list):
        raise ProvenanceError("the provenance envelope is malformed: it needs payloadType and payload (strings) "
                              "and signatures (a list)")
    if payload_type != PAYLOAD_TYPE:
        raise ProvenanceError(f"the envelope's payloadType is {payload_type!r}, not {PAYLOAD_TYPE!r}: it is not "
                              "provenance")
    body = _b64("payload", payload)
    known = {key.fingerprint: key for key in ([keys] if isinstance(keys, PublicKey) else list(keys))}
    if not signatures:
        raise ProvenanceError("the provenance envelope has no signatures; it must be signed before it is trusted")
    message, unknown, failed = pae(PAYLOAD_TYPE, body), [], []
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise ProvenanceError("a signature in the provenance envelope is malformed: each needs sig (base64)")
        key = known.get(entry.get("keyid", ""))
        if key is None:
            unknown.append(str(entry.get("keyid") or "<no keyid>"))
        elif key.verify(_b64("sig", entry["sig"]), message):
            return _parse(body, predicate_type)
        else:
            failed.append(key.name)
    if failed:
        raise ProvenanceError(f"the provenance signature by {', '.join(failed)} does not verify: the payload or the "
                              "signature was altered; do not trust these artefacts")
    raise ProvenanceError(f"the provenance is signed only by unknown keys ({', '.join(unknown)}); trusted keys are "
                          f"{', '.join(sorted(known)) or 'none'}")


def check_subjects(statement: dict[str, Any], files: dict[str, bytes]) -> None:
    """Return only if ``files`` (name -> content) are exactly the statement's subjects, each with its SHA-256.

    Raises :class:`ProvenanceError` naming the first artefact (by name) that is missing, that the
    provenance does not cover, or whose content does not match the recorded digest.
    """
    _check_statement(statement)
    recorded = {s["name"]: s["digest"].get("sha256") for s in statement["subject"]}
    for name in sorted(recorded.keys() | files.keys()):
        if name not in files:
            raise ProvenanceError(f"artefact {name} is named in the provenance but missing")
        if name not in recorded:
            raise ProvenanceError(f"artefact {name} is not covered by the provenance; it cannot be trusted")
        if recorded[name] is None:
            raise ProvenanceError(f"the provenance records no sha256 for artefact {name}; it cannot be checked")
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != recorded[name]:
            raise ProvenanceError(f"artefact {name} does not match its provenance: its sha256 is {actual}, "
                                  f"the provenance says {recorded[name]}; it was changed after the build")


def _parse(body: bytes, predicate_type: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ProvenanceError("the signed provenance payload is not JSON") from None
    _check_statement(parsed)
    statement: dict[str, Any] = parsed  # _check_statement refused anything but a Statement object
    if predicate_type is not None and statement["predicateType"] != predicate_type:
        raise ProvenanceError(f"the statement's predicateType is {statement['predicateType']!r}, not "
                              f"{predicate_type!r}")
    return statement


def _check_statement(obj: Any) -> None:
    """:class:`ProvenanceError` unless ``obj`` has the shape of an in-toto Statement v1."""
    if not isinstance(obj, dict) or obj.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"the payload is not an in-toto Statement v1 (_type must be {STATEMENT_TYPE!r})")
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ProvenanceError("the statement has no subject: it must name at least one artefact")
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if (not isinstance(digest, dict) or not digest or not isinstance(subject.get("name"), str)
                or not all(isinstance(v, str) and _HEX_DIGEST.match(v) for v in digest.values())):
            raise ProvenanceError(f"statement subject {subject!r} is malformed: it needs a name and hex digests")
    if not isinstance(obj.get("predicateType"), str) or not isinstance(obj.get("predicate"), dict):
        raise ProvenanceError("the statement needs predicateType (a string) and predicate (an object)")


def _check_timestamp(field: str, value: Any) -> None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value:
        raise ProvenanceError(f"{field}={value!r} is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z")


def _b64(field: str, text: str) -> bytes:
    """Standard or URL-safe base64 (DSSE allows either), strictly."""
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ProvenanceError(f"the envelope's {field} is not base64") from None
