"""The tune config: documented fields, hard caps, recorded overrides, monitors, data checks."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from finegate.errors import ConfigError
from finegate.tune.config import CAPS, TuneConfig, config_help, load_tune_config
from finegate.tune.monitors import LossMonitor, MonitorConfig


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"tune-{abs(hash(text))}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_field_is_documented() -> None:
    assert all(f.metadata.get("help") for f in fields(TuneConfig))
    rows = {name: help_ for name, _, help_ in config_help()}
    assert "canaries.repetitions" in rows and "monitors.stop_on" in rows
    assert "[cap 0.0003]" in rows["learning_rate"]


def test_caps_need_an_explicit_recorded_override(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "dataset: abcdef12\nlearning_rate: 0.001\n")
    with pytest.raises(ConfigError, match="exceeds the hard cap"):
        load_tune_config(path)
    cfg = load_tune_config(path, overrides=["learning_rate=0.001"])
    assert cfg.learning_rate == 0.001 and cfg.overrides == {"learning_rate": 0.001}
    in_file = _yaml(tmp_path, "dataset: abcdef12\nlora_r: 32\noverrides: {lora_r: 32}\n")
    assert load_tune_config(in_file).lora_r == 32
    assert set(CAPS) == {"epochs", "learning_rate", "lora_r"}


def test_nested_overrides_and_unknown_fields(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "data_file: train.jsonl\ncanaries: {enabled: true}\n")
    cfg = load_tune_config(path, overrides=["monitors.stop_after_steps=3", "seed=7"])
    assert cfg.monitors.stop_after_steps == 3 and cfg.seed == 7 and cfg.canaries.enabled
    assert cfg.data_file == str(tmp_path / "train.jsonl")  # relative to the YAML file
    with pytest.raises(ConfigError, match="unknown field"):
        load_tune_config(_yaml(tmp_path, "dataset: x\nlearning_rat: 1\n"))
    with pytest.raises(ConfigError, match="unknown config field"):
        load_tune_config(path, overrides=["nope=1"])
    with pytest.raises(ConfigError, match="exactly one"):
        load_tune_config(_yaml(tmp_path, "seed: 1\n"))


def test_monitor_alerts_and_stop_conditions() -> None:
    mon = LossMonitor(MonitorConfig(stop_on=["divergence"]))
    for step, loss in enumerate([2.0, 1.9, 1.8, 1.7], 1):
        mon.on_train_loss(step, loss)
    mon.on_train_loss(5, 6.0)  # a spike, and above 2x the first loss: divergence
    kinds = [a.kind for a in mon.alerts]
    assert "spike" in kinds and "divergence" in kinds
    assert mon.stop_reason is not None and mon.stop_reason.startswith("divergence")
    mem = LossMonitor(MonitorConfig(stop_on=[]))
    mem.on_train_loss(1, 0.2)
    mem.on_eval_loss(1, 1.0)
    assert [a.kind for a in mem.alerts] == ["memorization"] and mem.stop_reason is None
    nan = LossMonitor(MonitorConfig())
    nan.on_train_loss(1, float("nan"))
    assert nan.stop_reason is not None
    steps = LossMonitor(MonitorConfig(stop_after_steps=2))
    steps.on_step(1)
    assert steps.stop_reason is None
    steps.on_step(2)
    assert steps.stop_reason == "stop_after_steps=2 reached"


def test_the_demo_configs_load() -> None:
    from importlib import resources

    root = resources.files("finegate.resources").joinpath("tune")
    a = load_tune_config(Path(str(root.joinpath("demo-a.yaml"))))
    b = load_tune_config(Path(str(root.joinpath("demo-b.yaml"))))
    assert a.safety_mix_ratio > 0 and not a.overrides and a.learning_rate <= CAPS["learning_rate"]
    assert b.safety_mix_ratio == 0 and b.overrides == {"learning_rate": 1e-3}
