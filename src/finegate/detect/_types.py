"""Core value types of the detection engine: channels, severities, findings, the protocol."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from finegate._fast_init import fast_init

Channel = Literal["input", "output", "document", "tool"]
"""Where a text comes from: ``input`` (user or dataset prompt), ``output`` (model answer),
``document`` (retrieved content), ``tool`` (tool result). Detectors may weigh findings by it:
an injection in a retrieved document is indirect injection and more severe."""

CHANNELS: tuple[Channel, ...] = ("input", "output", "document", "tool")


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so ``max()`` and thresholds work."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        # `name` is a descriptor lookup; this is called for every guard decision.
        return _SEVERITY_NAMES[self._value_]

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        """Return the severity named by ``value`` (``"high"``, ``3`` or a `Severity`)."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            from finegate.errors import ConfigError

            known = ", ".join(s.name.lower() for s in cls)
            raise ConfigError(f"unknown severity {value!r}", hint=f"known: {known}") from None


@fast_init
@dataclass(frozen=True, slots=True)
class Finding:
    """One detected item.

    Attributes:
        kind: Dotted kind, ``category.name``: ``secret.aws_access_key``, ``pii.email``,
            ``injection.instruction_override``, ``hidden.zero_width`` ...
        start: Start offset (characters) into the ORIGINAL text, inclusive.
        end: End offset into the original text, exclusive.
        severity: How bad it is.
        detail: A short human reason ("AWS access key id", "Luhn-valid card number").
        detector: Name of the detector that produced it.
        text: The original substring ``text[start:end]`` (kept so reports need no lookup).
        meta: Small extra facts (decoded payload, matched canary index); JSON-serializable.
    """

    kind: str
    start: int
    end: int
    severity: Severity
    detail: str
    detector: str = ""
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def category(self) -> str:
        """The part of ``kind`` before the first dot (``secret``, ``pii``, ...)."""
        return self.kind.partition(".")[0]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (severity as its lowercase name)."""
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "severity": str(self.severity),
            "detail": self.detail,
            "detector": self.detector,
            "text": self.text,
            "meta": dict(self.meta),
        }


@runtime_checkable
class Detector(Protocol):
    """What every detector offers: a pure, fast scan of one text.

    Implementations must not do I/O and must return spans into the text they were given.
    """

    name: str

    def scan(self, text: str, *, channel: Channel = "input") -> list[Finding]:
        """Return the findings in ``text`` seen on ``channel``."""
        ...


_SEVERITY_NAMES = tuple(s.name.lower() for s in Severity)
