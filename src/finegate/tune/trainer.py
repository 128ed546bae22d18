"""LoRA fine-tuning with transformers' Trainer + PEFT, and the training record in the store.

The trainer is plain transformers: on a CUDA device it trains in bf16 automatically, and
``accelerate launch -m finegate tune --config tune.yaml`` runs the same code data-parallel
(FSDP/DeepSpeed through an accelerate config). Checkpoints (adapter, optimizer, scheduler,
RNG states, the data position) are written every ``save_steps`` and when a monitor stops the
run; ``resume=True`` continues from the newest one without repeating a batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError
from finegate.tune._data import Canary, encode_chat, prepare_data
from finegate.tune.config import CAPS, TuneConfig
from finegate.tune.monitors import Alert, LossMonitor, monitor_callback

if TYPE_CHECKING:
    from finegate.governance import Principal
    from finegate.store import Store

__all__ = ["TuneResult", "code_version", "last_checkpoint", "train"]

ProgressFn = Callable[[int, int, float | None], None]


@dataclass
class TuneResult:
    """What a training run produced.

    Attributes:
        run_id: The training record (run kind ``tune``).
        adapter_dir: The saved adapter (also copied into the artifact store).
        adapter_sha256: The adapter's artifact hash.
        model_uri: ``hf:BASE+adapter:PATH`` of the tuned model (artifact-store path).
        model_hash: Identity hash of the tuned model (what eval runs record).
        global_step: Optimizer steps done (across resumes).
        stopped: Why training stopped early (monitor / early stopping), else None.
        loss_curve: ``[{"step", "loss"} | {"step", "eval_loss"}]`` over the whole run.
        alerts: Monitor alerts.
        canaries: The planted canaries (empty unless enabled).
        duration_s: Wall time of this invocation.
    """

    run_id: str
    adapter_dir: Path
    adapter_sha256: str
    model_uri: str
    model_hash: str
    global_step: int
    stopped: str | None
    loss_curve: list[dict[str, float]]
    alerts: list[Alert]
    canaries: list[Canary] = field(default_factory=list)
    duration_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def code_version() -> dict[str, str | None]:
    """Finegate's version and, when run from a git checkout, the commit (``+dirty`` if so)."""
    from finegate import __version__

    commit: str | None = None
    root = Path(__file__).resolve().parents[3]
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            )
            commit = out.stdout.strip() or None
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "-uno"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if commit and dirty.stdout.strip():
                commit += "+dirty"
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"finegate": __version__, "git_commit": commit}


def _hardware(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": device,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    else:
        info["torch_threads"] = torch.get_num_threads()
    try:
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` directory in ``output_dir``, if any."""
    if not output_dir.is_dir():
        return None
    cps = [p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(cps, key=lambda p: int(p.name.split("-")[-1])) if cps else None


class _Collator:
    """Right-pads encoded examples; labels are padded with -100."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _layers_to_transform(model: Any, frozen: list[int]) -> list[int] | None:
    if not frozen:
        return None
    n = int(model.config.num_hidden_layers)
    drop = {i % n for i in frozen}
    return [i for i in range(n) if i not in drop]


def _output_dir(cfg: TuneConfig, store: Store) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    name = cfg.name or "run"
    return store.home / "tune" / name


def train(
    cfg: TuneConfig,
    store: Store,
    *,
    resume: bool = False,
    allow_unscanned: bool = False,
    actor: Principal | None = None,
    progress: ProgressFn | None = None,
) -> TuneResult:
    """Fine-tune a LoRA adapter as ``cfg`` says and record the run (kind ``tune``).

    Args:
        cfg: The checked config.
        store: Where the record, the adapter artifact and the audit event go.
        resume: Continue from the newest checkpoint in the output directory.
        allow_unscanned: Train on raw files no dataset version lists (recorded).
        actor: Who tunes (needs ``model:tune``); default the current principal.
        progress: Called as ``progress(step, max_steps, loss)`` after each logged step.

    Raises:
        ConfigError: bad data, ``resume`` without a checkpoint.
        PermissionDeniedError: the actor may not tune.
    """
    from finegate.governance import Action, audit_event, authorize, resolve_actor

    who = resolve_actor(store, actor)
    authorize(store, who, Action.TUNE, object_type="training_run", object_id=cfg.name or "tune")
    t0 = time.perf_counter()
    out_dir = _output_dir(cfg, store)
    checkpoint = last_checkpoint(out_dir) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {out_dir}", hint="run without --resume")
    data = prepare_data(cfg, store, allow_unscanned=allow_unscanned)

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

    from finegate.models.hf import load_hf_model
    from finegate.models.uri import BackendOptions, split_uri

    scheme, spec = split_uri(cfg.base_model)
    if scheme != "hf":
        raise ConfigError(f"fine-tuning needs an hf: base model, got {cfg.base_model!r}")
    device = (
        cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    model, tok, base_identity = load_hf_model(spec, BackendOptions(device=device, dtype="float32"))
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
        layers_to_transform=_layers_to_transform(model, cfg.freeze_layers),
    )
    model = get_peft_model(model, lora)
    enc = [
        encode_chat(tok, m, max_len=cfg.max_seq_len, assistant_only=cfg.assistant_only_loss)
        for m in data.train
    ]
    val = [
        encode_chat(tok, m, max_len=cfg.max_seq_len, assistant_only=cfg.assistant_only_loss)
        for m in data.validation
    ]
    use_val = bool(val) and cfg.eval_steps > 0
    early = use_val and cfg.early_stopping_patience > 0
    save_steps = cfg.save_steps
    if early and save_steps % cfg.eval_steps:
        save_steps = cfg.eval_steps * max(1, round(save_steps / cfg.eval_steps))
    args = TrainingArguments(
        output_dir=str(out_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if use_val else "no",
        eval_steps=cfg.eval_steps if use_val else None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=device.startswith("cuda"),
        use_cpu=device == "cpu",
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        save_only_model=False,
    )
    monitor = LossMonitor(cfg.monitors)
    callbacks: list[Any] = [monitor_callback(monitor), _progress_callback(progress)]
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=enc,
        eval_dataset=val or None,
        data_collator=_Collator(int(tok.pad_token_id)),
        callbacks=callbacks,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # finegate shows its own progress
        trainer.remove_callback(cb)
    config_record = {
        **cfg.to_dict(),
        "caps": CAPS,
        "allow_unscanned": allow_unscanned,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "output_dir": str(out_dir),
        "code_version": code_version(),
        "hardware": _hardware(device),
        "data": data.sources,
        "base_model_hash": base_identity.content_hash,
    }
    run_id = store.start_run(
        "tune",
        model_uri=cfg.base_model,
        model_hash=base_identity.content_hash,
        config=config_record,
    )
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException:
        store.finish_run(
            run_id, status="error", summary={"alerts": [a.to_dict() for a in monitor.alerts]}
        )
        raise
    state = trainer.state
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(str(adapter_dir))  # the PEFT model: saves the adapter only
    tok.save_pretrained(str(adapter_dir))
    if data.canaries:
        (adapter_dir / "canaries.json").write_text(
            json.dumps([c.__dict__ for c in data.canaries], indent=1), encoding="utf-8"
        )
    sha = store.artifacts.put(
        adapter_dir,
        kind="adapter",
        name=cfg.name or "adapter",
        meta={"run_id": run_id, "base_model": cfg.base_model},
    )
    stored = store.artifacts.path(sha)
    model_uri = f"{cfg.base_model}+adapter:{stored}"
    model_hash = _tuned_hash(base_identity.content_hash, stored)
    curve = [
        {k: float(v) for k, v in e.items() if k in ("step", "loss", "eval_loss", "epoch")}
        for e in state.log_history
        if "loss" in e or "eval_loss" in e
    ]
    for e, h in zip(
        curve, [e for e in state.log_history if "loss" in e or "eval_loss" in e], strict=True
    ):
        e["step"] = float(h.get("step", 0))
    stopped = monitor.stop_reason
    if stopped is None and state.max_steps and state.global_step < state.max_steps:
        stopped = "early stopping (validation loss stopped improving)"
    duration = time.perf_counter() - t0
    summary = {
        "adapter_sha256": sha,
        "adapter_uri": model_uri,
        "model_hash": model_hash,
        "base_model_hash": base_identity.content_hash,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "stopped": stopped,
        "loss_curve": curve,
        "alerts": [a.to_dict() for a in monitor.alerts],
        "duration_s": round(duration, 2),
        "best_eval_loss": state.best_metric,
        "canaries": [c.__dict__ for c in data.canaries],
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    store.finish_run(run_id, status="done", summary=summary)
    audit_event(
        store,
        who,
        "tune.train",
        "training_run",
        run_id,
        after={"adapter_sha256": sha, "model_hash": model_hash},
        details={
            "base_model": cfg.base_model,
            "dataset": data.sources.get("dataset_version"),
            "overrides": cfg.overrides,
            "allow_unscanned": allow_unscanned,
            "unscanned_files": data.sources["unscanned_files"],
            "seed": cfg.seed,
            "resumed_from": str(checkpoint) if checkpoint else None,
        },
    )
    return TuneResult(
        run_id=run_id,
        adapter_dir=adapter_dir,
        adapter_sha256=sha,
        model_uri=model_uri,
        model_hash=model_hash,
        global_step=state.global_step,
        stopped=stopped,
        loss_curve=curve,
        alerts=list(monitor.alerts),
        canaries=data.canaries,
        duration_s=duration,
        data=data.sources,
    )


def _tuned_hash(base_hash: str, adapter_dir: Path) -> str:
    """The identity hash `hf:BASE+adapter:DIR` loads with (see `finegate.models.hf`)."""
    from finegate.models.hf import _weights_sha256

    return hashlib.sha256(
        f"{base_hash}+adapter:{_weights_sha256(adapter_dir)}".encode()
    ).hexdigest()


def _progress_callback(progress: ProgressFn | None) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if progress is not None and logs and "loss" in logs:
                progress(state.global_step, state.max_steps, float(logs["loss"]))

    return _Progress()
