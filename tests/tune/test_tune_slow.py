"""Real LoRA training on the embedded model: interrupt + resume, canary exposure, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finegate.errors import ConfigError
from finegate.tune.config import load_tune_config


def _data(tmp_path: Path, n: int = 16) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_unscanned_file_is_refused_before_any_training(tmp_path: Path) -> None:
    from finegate.store.db import open_store
    from finegate.tune.trainer import train

    cfg = load_tune_config(data={"data_file": str(_data(tmp_path))})
    with pytest.raises(ConfigError, match="never scanned"):
        train(cfg, open_store())


@pytest.mark.slow
def test_interrupt_and_resume_continue_without_repeating(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from finegate.models import load_backend
    from finegate.store.db import open_store
    from finegate.tune.trainer import last_checkpoint, train

    store = open_store()
    base = {
        "data_file": str(_data(tmp_path)),
        "max_steps": 4,
        "batch_size": 2,
        "save_steps": 2,
        "validation_fraction": 0.0,
        "eval_steps": 0,
        "max_seq_len": 64,
        "lora_r": 4,
        "safety_mix_ratio": 0.0,
        "learning_rate": 2e-4,
    }
    first_cfg = load_tune_config(
        data={**base, "output_dir": str(tmp_path / "run")},
        overrides=["monitors.stop_after_steps=2"],
    )
    first = train(first_cfg, store, allow_unscanned=True)
    assert first.global_step == 2 and first.stopped == "stop_after_steps=2 reached"
    assert last_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoint-2"

    resumed_cfg = load_tune_config(data={**base, "output_dir": str(tmp_path / "run")})
    resumed = train(resumed_cfg, store, resume=True, allow_unscanned=True)
    steps = [int(e["step"]) for e in resumed.loss_curve if "loss" in e]
    assert resumed.global_step == 4 and steps == [1, 2, 3, 4]  # continued, nothing repeated

    whole_cfg = load_tune_config(data={**base, "output_dir": str(tmp_path / "whole")})
    whole = train(whole_cfg, store, allow_unscanned=True)
    # Same batches in the same order with the same RNG state: the same losses.
    assert [e["loss"] for e in resumed.loss_curve] == pytest.approx(
        [e["loss"] for e in whole.loss_curve], rel=1e-4
    )

    record = store.get_run(resumed.run_id)
    assert record is not None and record.kind == "tune" and record.status == "done"
    assert record.config["resumed_from"].endswith("checkpoint-2")
    assert record.config["allow_unscanned"] is True
    assert record.config["data"]["unscanned_files"] == [base["data_file"]]
    assert record.summary["adapter_sha256"] == resumed.adapter_sha256
    assert record.config["code_version"]["finegate"]
    backend = load_backend(resumed.model_uri)  # hf:embedded+adapter:<artifact dir>
    assert backend.identity().content_hash == resumed.model_hash == record.summary["model_hash"]


@pytest.mark.slow
def test_canaries_repeated_16_times_are_more_exposed_than_once(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from finegate.models.hf import HFBackend
    from finegate.models.uri import split_uri
    from finegate.store.db import open_store
    from finegate.tune._data import render_chat
    from finegate.tune.privacy import canary_exposure
    from finegate.tune.trainer import train

    cfg = load_tune_config(
        data={
            "data_file": str(_data(tmp_path, 8)),
            "output_dir": str(tmp_path / "c"),
            "epochs": 1,
            "batch_size": 6,
            "validation_fraction": 0.0,
            "eval_steps": 0,
            "max_seq_len": 64,
            "safety_mix_ratio": 0.0,
            "learning_rate": 2e-3,
            "canaries": {"enabled": True, "repetitions": [1, 16], "per_repetition": 2},
        },
        overrides=["learning_rate=0.002"],
    )
    result = train(cfg, open_store(), allow_unscanned=True)
    assert len(result.canaries) == 4 and result.data["canary_copies"] == 34
    backend = HFBackend(split_uri(result.model_uri)[1])
    exposures = canary_exposure(
        backend.token_logprobs,
        lambda c: render_chat(backend.tokenizer, c),
        result.canaries,
        references=100,
    )
    by_rep: dict[int, list[float]] = {}
    for e in exposures:
        by_rep.setdefault(e.repetitions, []).append(e.exposure_estimated)
    once, often = sum(by_rep[1]) / 2, sum(by_rep[16]) / 2
    # Per-canary ranks among 100 references are noisy with two canaries per group; the
    # claim is about the groups: sixteen copies are memorised more than one copy.
    assert often > once, exposures


@pytest.mark.slow
def test_privacy_run_is_recorded_for_the_tuned_model(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from finegate.store.db import open_store
    from finegate.tune._data import load_chat_file
    from finegate.tune.privacy import run_privacy
    from finegate.tune.trainer import train

    store = open_store()
    data = _data(tmp_path, 12)
    cfg = load_tune_config(
        data={"data_file": str(data), "output_dir": str(tmp_path / "p"), "max_steps": 2,
              "batch_size": 4, "validation_fraction": 0.25, "eval_steps": 0, "max_seq_len": 64,
              "safety_mix_ratio": 0.0, "canaries": {"enabled": True, "repetitions": [1],
                                                    "per_repetition": 1}},
    )  # fmt: skip
    result = train(cfg, store, allow_unscanned=True)
    chats = load_chat_file(data)
    heldout = [
        [{"role": "user", "content": f"What is {i} times two?"},
         {"role": "assistant", "content": f"{i} times two is {2 * i}."}]
        for i in range(6)
    ]  # fmt: skip
    report = run_privacy(store, result.model_uri, train_records=chats, heldout_records=heldout,
                         references=20, max_tokens=12)  # fmt: skip
    run = store.get_run(report.run_id or "")
    assert run is not None and run.kind == "privacy" and run.model_hash == result.model_hash
    # The three validation examples were never trained on: they are not counted as members.
    assert run.summary["excluded_validation_records"] == 3
    assert report.membership is not None and report.membership.members == 9
    assert set(report.membership.auroc) == {"loss", "zlib", "min_k", "reference"}
    assert all(0.0 <= v <= 1.0 for v in report.membership.auroc.values())
    assert len(report.canaries) == 1 and report.canaries[0].candidates == 21
    assert report.regurgitation["records"] == 9
