"""finegate's one detection engine, used by data screening, evaluation scorers and the gateway.

Quick use:

    >>> from finegate.detect import Scanner, redact
    >>> scanner = Scanner()                      # all built-in detectors except leakage
    >>> text = "mail jane.roe@acme-mail.com, key AKIA2E0A8F3B244C9986"
    >>> findings = scanner.scan(text, channel="input")
    >>> [f.kind for f in findings]
    ['pii.email', 'secret.aws_access_key']
    >>> redact(text, findings).text
    'mail [EMAIL_1], key [AWS_ACCESS_KEY_1]'

Detectors implement `Detector` (``scan(text, *, channel) -> list[Finding]``) and are looked up
by name in the plugin registry (kind ``"detector"``). Texts are normalized first
(`normalize`); findings always point into the original text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finegate.detect._actions import (
    MODES,
    InMemoryVault,
    Mode,
    Pseudonymizer,
    Redaction,
    Vault,
    is_sensitive,
    label_for,
    redact,
    restore,
)
from finegate.detect._base import RuleDetector
from finegate.detect._injection import escalate_obedience
from finegate.detect._normalize import NormalizedText, normalize
from finegate.detect._rules import Override, Rule, hyperscan_available
from finegate.detect._scanner import DEFAULT_DETECTORS, Scanner, build_detector, resolve_overlaps
from finegate.detect._types import CHANNELS, Channel, Detector, Finding, Severity
from finegate.detect.detectors import (
    HiddenTextDetector,
    InjectionDetector,
    LeakageDetector,
    MalwareDetector,
    NetworkDetector,
    ObedienceDetector,
    PiiDetector,
    SecretsDetector,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_DETECTORS",
    "MODES",
    "Channel",
    "Detector",
    "Finding",
    "HiddenTextDetector",
    "InMemoryVault",
    "InjectionDetector",
    "LeakageDetector",
    "MalwareDetector",
    "Mode",
    "NetworkDetector",
    "NormalizedText",
    "ObedienceDetector",
    "Override",
    "PiiDetector",
    "Pseudonymizer",
    "Redaction",
    "Rule",
    "RuleDetector",
    "Scanner",
    "SecretsDetector",
    "Severity",
    "Vault",
    "build_detector",
    "escalate_obedience",
    "hyperscan_available",
    "is_sensitive",
    "label_for",
    "normalize",
    "redact",
    "resolve_overlaps",
    "restore",
    "scan",
]

_DEFAULT: Scanner | None = None


def scan(
    text: str, *, channel: Channel = "input", options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Scan ``text`` with the default detectors (a shared `Scanner` unless ``options``).

    Args:
        text: The text to scan.
        channel: Where it comes from.
        options: Per-detector options; a new scanner is built when given.
    """
    global _DEFAULT
    if options:
        return Scanner(options=options).scan(text, channel=channel)
    if _DEFAULT is None:
        _DEFAULT = Scanner()
    return _DEFAULT.scan(text, channel=channel)
