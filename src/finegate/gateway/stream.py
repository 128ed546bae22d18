"""Output guarding of streamed answers: findings that cross chunk boundaries are still caught.

`StreamGuard` holds back the minimal tail that could still turn into a finding: the last
``holdback`` characters, extended back to the start of the unfinished word (secrets, e-mail
addresses, canaries and placeholders never contain spaces). Everything before that point is
scanned together with some already-sent context, redacted from its findings and released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finegate.detect import Finding, restore
from finegate.gateway.config import TierConfig
from finegate.gateway.guards import Decision, GuardEngine, InputResult
from finegate.models.types import ChatRequest

__all__ = ["StreamGuard"]


@dataclass
class StreamGuard:
    """Guards one streamed answer.

    Args:
        engine: The guard engine (scanner, leakage detectors, rules).
        tier: The caller's tier.
        request: The guarded request (its system prompt is protected).
        inp: The input guard's result (vault for restoring placeholders).
        holdback: Characters held back at the end; default ``engine.holdback``.
    """

    engine: GuardEngine
    tier: TierConfig
    request: ChatRequest
    inp: InputResult
    holdback: int = 0
    text: str = ""
    done: int = 0
    blocked: bool = False
    decisions: list[Decision] = field(default_factory=list)
    review_reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.holdback <= 0:
            self.holdback = self.engine.holdback

    def feed(self, delta: str) -> str:
        """Add a piece of the answer; return the text that is safe to send now."""
        if self.blocked:
            return ""
        self.text += delta
        return self._release(final=False)

    def finish(self) -> str:
        """Return whatever is still held back, guarded (call once, at the end)."""
        if self.blocked:
            return ""
        return self._release(final=True)

    def _cut(self) -> int:
        end = len(self.text) - self.holdback
        if end <= self.done:
            return self.done
        while end > self.done and not self.text[end - 1].isspace():
            end -= 1
        return end

    def _release(self, *, final: bool) -> str:
        end = len(self.text) if final else self._cut()
        if end <= self.done:
            return ""
        base = max(0, self.done - self.holdback)
        window = self.text[base:] if not final else self.text[base:end]
        raw = self.engine.scan_output(window, self.request)
        findings = [
            Finding(f.kind, f.start + base, f.end + base, f.severity, f.detail, f.detector,
                    f.text, f.meta)
            for f in raw
        ]  # fmt: skip
        # Never cut through a finding: release only up to the start of one that straddles.
        for f in findings:
            if f.start < end < f.end and f.start >= self.done:
                end = f.start
        if end <= self.done:
            return ""
        segment_findings = []
        for f in findings:
            s, e = max(f.start, self.done), min(f.end, end)
            if e <= s:
                continue
            segment_findings.append(
                Finding(f.kind, s - self.done, e - self.done, f.severity, f.detail, f.detector,
                        self.text[s:e], f.meta)
            )  # fmt: skip
        segment = self.text[self.done : end]
        out, decisions, blocked, reasons = self.engine.apply_output_rules(
            segment, segment_findings, self.tier, where="stream"
        )
        self.decisions.extend(decisions)
        self.review_reasons.extend(reasons)
        self.done = end
        if blocked:
            self.blocked = True
            return ""
        if self.tier.pii_restore:
            out = restore(out, self.inp.vault, namespace=self.inp.namespace)
        return out
