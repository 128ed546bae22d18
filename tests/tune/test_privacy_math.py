"""Exposure, AUROC and TPR@FPR on hand-made scores (no model)."""

from __future__ import annotations

import math
import zlib

from finegate.tune._data import make_canaries
from finegate.tune.privacy import auroc, canary_exposure, membership_inference, tpr_at_fpr


def test_auroc_and_tpr() -> None:
    assert auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auroc([1, 2], [1, 2]) == 0.5
    assert auroc([0], [1]) == 0.0
    members = [float(x) for x in range(100, 120)]
    nonmembers = [float(x) for x in range(100)]
    assert tpr_at_fpr(members, nonmembers, 0.05) == 1.0
    assert tpr_at_fpr(nonmembers[:20], nonmembers, 0.05) == 0.0


def test_exposure_ranks_the_favoured_secret_first() -> None:
    canaries = make_canaries([1, 16], 1, seed=3)
    favoured = canaries[1].secret

    def scorer(texts: object) -> list[list[float]]:
        # The model "knows" one secret: its text scores far higher than any candidate.
        return [
            [-1.0] if favoured in t else [-5.0 - (zlib.crc32(t.encode()) % 7) / 10] for t in texts
        ]  # type: ignore[attr-defined]

    out = canary_exposure(scorer, lambda chat: chat[1]["content"], canaries, references=63)
    known, unknown = out[1], out[0]
    assert known.rank == 1 and math.isclose(known.exposure, 6.0)
    assert unknown.rank > 1 and unknown.exposure < known.exposure
    assert known.exposure_estimated > unknown.exposure_estimated
    assert not known.extracted  # no generate function: extraction not attempted


def test_membership_inference_separates_lower_loss_members() -> None:
    members = [f"member {i}" for i in range(20)]
    others = [f"other {i}" for i in range(20)]

    def target(texts: object) -> list[list[float]]:
        return [[-0.5, -0.6] if t.startswith("member") else [-2.0, -2.1] for t in texts]  # type: ignore[attr-defined]

    def base(texts: object) -> list[list[float]]:
        return [[-2.0, -2.0] for _ in texts]  # type: ignore[attr-defined]

    res = membership_inference(target, members, others, reference=base)
    assert res.auroc["loss"] == 1.0 and res.auroc["min_k"] == 1.0 and res.auroc["reference"] == 1.0
    assert res.tpr_at_5fpr["loss"] == 1.0
    assert res.base_auroc["loss"] == 0.5
