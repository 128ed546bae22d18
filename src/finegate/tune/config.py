"""The fine-tuning configuration: one typed dataclass, loaded from YAML, with hard caps.

Every field carries its help text in ``metadata["help"]``; ``finegate tune --help-config`` and
docs/tune.md are generated from it, so the documentation cannot drift from the code (the TRL
convention). Defaults are conservative. Three settings have **hard caps** (epochs, learning
rate, LoRA rank): a value above its cap is refused unless it is listed under ``overrides`` in
the YAML file or given with ``--override FIELD=VALUE`` on the command line; every override is
stored in the training record, so a reviewer sees that someone chose to go past the cap.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from finegate.errors import ConfigError

__all__ = [
    "CAPS",
    "CanaryConfig",
    "MonitorConfig",
    "TuneConfig",
    "config_help",
    "load_tune_config",
    "parse_override",
]


def _f(default: Any, help: str) -> Any:  # noqa: A002 - mirrors dataclasses' own naming
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class CanaryConfig:
    """Random secrets planted in the training data to measure memorization (opt-in)."""

    enabled: bool = _f(False, "Plant canaries (random secrets) in the training data.")
    repetitions: list[int] = _f(
        [1, 4, 16], "How many times each canary group is repeated in the training data."
    )
    per_repetition: int = _f(2, "Canaries per repetition count.")
    seed: int = _f(1234, "Seed of the canary secrets (the same seed gives the same canaries).")


@dataclass
class MonitorConfig:
    """Training monitors: alerts, and conditions that stop the run."""

    spike_factor: float = _f(
        3.0, "Alert when a step's loss exceeds this multiple of the running mean of the last 10."
    )
    divergence_factor: float = _f(
        2.0, "Divergence: the loss is NaN/inf or above this multiple of the first logged loss."
    )
    memorization_ratio: float = _f(
        0.5, "Memorization alert: training loss below this fraction of the validation loss."
    )
    stop_on: list[str] = _f(
        ["divergence"],
        "Alerts that stop the run: any of divergence, spike, memorization.",
    )
    stop_after_steps: int = _f(
        0, "Stop after this many optimizer steps (0 = off); used to test interruption/resume."
    )


@dataclass
class TuneConfig:
    """How to fine-tune a LoRA adapter (every field is documented; see docs/tune.md)."""

    base_model: str = _f("hf:embedded", "Base model URI (hf:embedded, hf:PATH[+adapter:PATH]).")
    dataset: str | None = _f(
        None, "Dataset version id (or unique prefix) from `finegate data` to train on."
    )
    data_file: str | None = _f(
        None,
        "A raw chat JSONL file instead of a version; refused unless it was scanned (any "
        "version lists its sha256) or --allow-unscanned is given (recorded).",
    )
    extra_files: list[str] = _f(
        [], "Further chat JSONL files mixed into the training data (recorded by sha256)."
    )
    name: str = _f("", "Name of the run (for the record and the adapter directory).")
    output_dir: str | None = _f(
        None, "Where checkpoints and the adapter go (default $FINEGATE_HOME/tune/NAME)."
    )
    seed: int = _f(0, "Seed for data order, the validation split, LoRA init and dropout.")
    epochs: float = _f(1.0, "Training epochs (hard cap 3).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: run the epochs).")
    learning_rate: float = _f(1e-4, "Peak learning rate (hard cap 3e-4).")
    lr_scheduler: str = _f("linear", "Learning-rate schedule (transformers name).")
    warmup_steps: int = _f(0, "Linear warm-up steps.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping: maximum global gradient norm.")
    batch_size: int = _f(4, "Examples per device per step.")
    gradient_accumulation_steps: int = _f(1, "Steps accumulated per optimizer step.")
    max_seq_len: int = _f(384, "Examples are truncated to this many tokens.")
    lora_r: int = _f(8, "LoRA rank (hard cap 16).")
    lora_alpha: int = _f(16, "LoRA scaling alpha.")
    lora_dropout: float = _f(0.05, "LoRA dropout.")
    target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj"], "Module names LoRA is applied to."
    )
    freeze_layers: list[int] = _f(
        [],
        "Decoder layer indices left without LoRA (frozen), e.g. the 'safety layers' of the "
        "model; negative indices count from the end.",
    )
    assistant_only_loss: bool = _f(
        True, "Compute the loss only on assistant tokens (not on system/user text)."
    )
    safety_mix_ratio: float = _f(
        0.04,
        "Share of the training examples drawn from the safety anchor set (0 = no mix).",
    )
    safety_anchors: str = _f(
        "builtin", "The safety anchor set: 'builtin' (resources/anchors) or a chat JSONL path."
    )
    validation_fraction: float = _f(0.1, "Share of the examples held out for validation.")
    eval_steps: int = _f(10, "Validate (and maybe stop early) every this many steps.")
    early_stopping_patience: int = _f(
        3, "Stop after this many validations without improvement (0 = off)."
    )
    save_steps: int = _f(10, "Write a checkpoint every this many steps (for --resume).")
    save_total_limit: int = _f(2, "Checkpoints kept on disk.")
    logging_steps: int = _f(1, "Record the training loss every this many steps.")
    device: str = _f("auto", "auto, cpu or cuda; bf16 is used on a CUDA device automatically.")
    canaries: CanaryConfig = field(
        default_factory=CanaryConfig, metadata={"help": "Memorization canaries (opt-in)."}
    )
    monitors: MonitorConfig = field(
        default_factory=MonitorConfig, metadata={"help": "Training monitors."}
    )
    overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Explicit overrides of hard caps (FIELD: VALUE); recorded."},
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON-able data."""
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Raise :class:`ConfigError` for an invalid value or a cap exceeded without override."""
        if (self.dataset is None) == (self.data_file is None):
            raise ConfigError(
                "the tune config needs exactly one of dataset (a version) or data_file",
                hint="dataset: VERSION_ID from `finegate data versions`",
            )
        for name, cap in CAPS.items():
            value = getattr(self, name)
            if value > cap and name not in self.overrides:
                raise ConfigError(
                    f"{name}={value} exceeds the hard cap {cap}",
                    hint=f"confirm with --override {name}={value} (it is recorded)",
                )
        if not 0.0 <= self.safety_mix_ratio < 1.0:
            raise ConfigError(f"safety_mix_ratio must be in [0, 1), got {self.safety_mix_ratio}")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ConfigError(
                f"validation_fraction must be in [0, 0.5), got {self.validation_fraction}"
            )
        bad = set(self.monitors.stop_on) - {"divergence", "spike", "memorization"}
        if bad:
            raise ConfigError(f"unknown monitor condition(s) in stop_on: {sorted(bad)}")
        if self.batch_size < 1 or self.lora_r < 1 or self.epochs <= 0:
            raise ConfigError("batch_size, lora_r and epochs must be positive")


CAPS: dict[str, float] = {"epochs": 3, "learning_rate": 3e-4, "lora_r": 16}
"""Hard caps: exceeding one needs an explicit, recorded override."""


def _coerce(raw: str, current: Any) -> Any:
    """Parse a command-line value by the type of the field's current value."""
    if isinstance(current, bool):
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"expected a boolean, got {raw!r}")
    if isinstance(current, (list, dict)):
        return json.loads(raw) if raw.strip()[:1] in "[{" else raw.split(",")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"could not parse value {raw!r}") from exc


def parse_override(text: str) -> tuple[str, str]:
    """Split ``FIELD=VALUE`` (FIELD may be dotted: ``monitors.stop_after_steps=5``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not FIELD=VALUE")
    return key.strip(), value


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown field(s) in {where}: {', '.join(unknown)}",
            hint="see `finegate tune --help-config`",
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "canaries":
            value = _build(CanaryConfig, dict(value or {}), f"{where}.canaries")
        elif key == "monitors":
            value = _build(MonitorConfig, dict(value or {}), f"{where}.monitors")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid {where}: {exc}") from exc


def load_tune_config(
    path: Path | None = None,
    *,
    data: dict[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TuneConfig:
    """Load and check a config from a YAML file (or a dict), applying ``FIELD=VALUE`` overrides.

    Relative ``data_file``/``extra_files``/``safety_anchors`` paths are resolved against the
    YAML file's directory. Command-line overrides are recorded in ``config.overrides``.
    """
    raw: dict[str, Any] = dict(data or {})
    base_dir: Path | None = None
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"could not read tune config {str(path)!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"tune config {str(path)!r} must be a mapping")
        raw = {**loaded, **raw}
        base_dir = path.parent
    cfg: TuneConfig = _build(TuneConfig, raw, str(path or "tune config"))
    for text in overrides:
        key, value = parse_override(text)
        target: Any = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            target = getattr(target, p, None)
            if target is None or not dataclasses.is_dataclass(target):
                raise ConfigError(f"unknown config field {key!r}")
        if leaf not in {f.name for f in fields(target)}:
            raise ConfigError(f"unknown config field {key!r}", hint="see --help-config")
        parsed = _coerce(value, getattr(target, leaf))
        setattr(target, leaf, parsed)
        cfg.overrides[key] = parsed
    if base_dir is not None:
        cfg.data_file = _resolve(cfg.data_file, base_dir)
        cfg.extra_files = [str(_resolve(p, base_dir)) for p in cfg.extra_files]
        if cfg.safety_anchors != "builtin":
            cfg.safety_anchors = str(_resolve(cfg.safety_anchors, base_dir))
    cfg.check()
    return cfg


def _resolve(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def config_help() -> list[tuple[str, str, str]]:
    """Return ``(field, default, help)`` rows for every field, nested ones dotted."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type[Any], prefix: str) -> None:
        inst = cls()
        for f in fields(cls):
            value = getattr(inst, f.name)
            if dataclasses.is_dataclass(value):
                walk(type(value), f"{prefix}{f.name}.")
                continue
            cap = f" [cap {CAPS[f.name]}]" if not prefix and f.name in CAPS else ""
            rows.append((prefix + f.name, json.dumps(value), f.metadata.get("help", "") + cap))

    walk(TuneConfig, "")
    return rows
