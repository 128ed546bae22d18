"""Base class of the built-in detectors: declarative rules plus an optional extra pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from finegate.detect._normalize import NormalizedText
from finegate.detect._rules import Rule
from finegate.detect._types import Channel, Finding

if TYPE_CHECKING:
    from finegate.detect._scanner import Scanner


class RuleDetector:
    """A detector made of `Rule` objects and an optional `extra` pass.

    The `Scanner` merges the rules of all its rule detectors into one prefilter, so adding a
    detector adds no extra pass over the text. ``scan`` on a single detector builds (once) a
    scanner holding only this detector, so both ways of calling give the same findings.
    """

    name: str = "rules"

    def rules(self) -> Sequence[Rule]:
        """Return the detector's regex rules."""
        return ()

    def extra(self, norm: NormalizedText, channel: Channel) -> list[Finding]:
        """Return findings that are not regex matches, in ORIGINAL text offsets."""
        return []

    def scan(self, text: str, *, channel: Channel = "input") -> list[Finding]:
        """Scan one text with this detector alone."""
        scanner: Scanner | None = getattr(self, "_solo_scanner", None)
        if scanner is None:
            from finegate.detect._scanner import Scanner

            scanner = Scanner([self])
            self._solo_scanner = scanner
        return scanner.scan(text, channel=channel)
