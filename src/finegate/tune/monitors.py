"""Training monitors: loss spikes, divergence, memorization; a monitor can stop the run.

The monitor is plain Python over logged losses (:class:`LossMonitor`), wrapped in a
transformers ``TrainerCallback`` by :func:`monitor_callback`, so it is testable without a
model.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from finegate.tune.config import MonitorConfig

__all__ = ["Alert", "LossMonitor", "monitor_callback"]


@dataclass(frozen=True)
class Alert:
    """One monitor alert: ``kind`` is divergence, spike or memorization."""

    step: int
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {"step": self.step, "kind": self.kind, "detail": self.detail}


@dataclass
class LossMonitor:
    """Watches training and validation losses and decides when to stop."""

    config: MonitorConfig
    alerts: list[Alert] = field(default_factory=list)
    stop_reason: str | None = None
    _first: float | None = None
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    _last_train: float | None = None

    def _alert(self, step: int, kind: str, detail: str) -> None:
        self.alerts.append(Alert(step, kind, detail))
        if kind in self.config.stop_on and self.stop_reason is None:
            self.stop_reason = f"{kind} at step {step}: {detail}"

    def on_train_loss(self, step: int, loss: float) -> None:
        """Check one logged training loss."""
        cfg = self.config
        if not math.isfinite(loss):
            self._alert(step, "divergence", f"loss is {loss}")
            return
        if self._first is None:
            self._first = loss
        elif loss > cfg.divergence_factor * self._first:
            self._alert(
                step,
                "divergence",
                f"loss {loss:.3f} > {cfg.divergence_factor} x first loss {self._first:.3f}",
            )
        if len(self._recent) >= 3:
            mean = sum(self._recent) / len(self._recent)
            if loss > cfg.spike_factor * mean:
                self._alert(
                    step, "spike", f"loss {loss:.3f} > {cfg.spike_factor} x recent mean {mean:.3f}"
                )
        self._recent.append(loss)
        self._last_train = loss

    def on_eval_loss(self, step: int, eval_loss: float) -> None:
        """Compare the validation loss with the latest training loss (memorization)."""
        if not math.isfinite(eval_loss):
            self._alert(step, "divergence", f"validation loss is {eval_loss}")
            return
        train = self._last_train
        if train is not None and train < self.config.memorization_ratio * eval_loss:
            self._alert(
                step,
                "memorization",
                f"training loss {train:.3f} < {self.config.memorization_ratio} x "
                f"validation loss {eval_loss:.3f}",
            )

    def on_step(self, step: int) -> None:
        """Stop after ``stop_after_steps`` optimizer steps when configured."""
        n = self.config.stop_after_steps
        if n and step >= n and self.stop_reason is None:
            self.stop_reason = f"stop_after_steps={n} reached"


def monitor_callback(monitor: LossMonitor) -> Any:
    """A transformers ``TrainerCallback`` feeding ``monitor`` and stopping when it says so.

    When the monitor stops the run a checkpoint is written first, so ``--resume`` continues
    from exactly that step.
    """
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> Any:
            logs = logs or {}
            if "loss" in logs:
                monitor.on_train_loss(state.global_step, float(logs["loss"]))
            if "eval_loss" in logs:
                monitor.on_eval_loss(state.global_step, float(logs["eval_loss"]))
            return self._maybe_stop(control)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            monitor.on_step(state.global_step)
            return self._maybe_stop(control)

        @staticmethod
        def _maybe_stop(control: Any) -> Any:
            if monitor.stop_reason is not None and not control.should_training_stop:
                control.should_training_stop = True
                control.should_save = True
            return control

    return _Callback()
