"""Actions applied from findings (never by re-scanning): redact, mask, pseudonymize.

Pseudonyms are keyed HMACs of the value, so the same value gets the same token across
documents that share a key; a `Vault` stores token -> value when the mapping must be
reversible (`restore`). The persistent, encrypted vault is `finegate.store.vault.SqlVault`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from finegate._fast_init import fast_init
from finegate.detect._types import Finding
from finegate.errors import ConfigError

Mode = Literal["redact", "mask", "pseudonymize"]
MODES: tuple[Mode, ...] = ("redact", "mask", "pseudonymize")

SENSITIVE_CATEGORIES = frozenset({"secret", "pii", "leak"})
SENSITIVE_KINDS = frozenset(
    {"network.internal_url", "network.internal_host", "network.private_ip", "hidden.unicode_tags"}
)
_TOKEN_RE = re.compile(r"\b[A-Z][A-Z0-9_]*_[0-9a-f]{12}\b")


def is_sensitive(finding: Finding) -> bool:
    """True for findings whose text should not be stored or shown.

    That is secrets, PII, leaked canaries/system prompt, internal hosts and smuggled tag text.
    """
    return finding.category in SENSITIVE_CATEGORIES or finding.kind in SENSITIVE_KINDS


def label_for(kind: str) -> str:
    """Return the placeholder label of a kind: ``pii.email`` -> ``EMAIL``."""
    label = _LABELS.get(kind)
    if label is None:
        label = kind.split(".", 1)[-1].upper()
        if len(_LABELS) < 4096:  # kinds are a small fixed set; bound it all the same
            _LABELS[kind] = label
    return label


_LABELS: dict[str, str] = {}


@runtime_checkable
class Vault(Protocol):
    """Reversible pseudonym storage: ``(namespace, token) -> value`` with optional expiry."""

    def put(self, namespace: str, token: str, value: str, *, ttl: timedelta | None = None) -> None:
        """Store ``value`` under ``token``; ``ttl`` makes the entry expire."""
        ...

    def get(self, namespace: str, token: str) -> str | None:
        """Return the value, or None when unknown or expired."""
        ...

    def purge_expired(self) -> int:
        """Delete expired entries; return how many."""
        ...


@dataclass
class InMemoryVault:
    """A `Vault` in a dict, for tests and single-process use (values in clear, in memory)."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _data: dict[tuple[str, str], tuple[str, datetime | None]] = field(default_factory=dict)

    def put(self, namespace: str, token: str, value: str, *, ttl: timedelta | None = None) -> None:
        """Store ``value`` under ``token``."""
        self._data[(namespace, token)] = (value, self.clock() + ttl if ttl else None)

    def get(self, namespace: str, token: str) -> str | None:
        """Return the value, or None when unknown or expired."""
        item = self._data.get((namespace, token))
        if item is None or (item[1] is not None and item[1] <= self.clock()):
            return None
        return item[0]

    def purge_expired(self) -> int:
        """Delete expired entries; return how many."""
        now = self.clock()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for k in dead:
            del self._data[k]
        return len(dead)

    def __len__(self) -> int:
        return len(self._data)


class Pseudonymizer:
    """Consistent pseudonyms: ``EMAIL_3fa9c01b2d7e`` for the same value under the same key.

    Args:
        key: HMAC key; a random one (consistent for this object only) when omitted.
        vault: Where to keep token -> value for `restore`; nothing is stored when omitted.
        namespace: Vault namespace (e.g. a tenant or dataset id).
        ttl: Expiry of vault entries.
    """

    def __init__(
        self,
        key: bytes | str | None = None,
        *,
        vault: Vault | None = None,
        namespace: str = "default",
        ttl: timedelta | None = None,
    ) -> None:
        if isinstance(key, str):
            key = key.encode()
        self._key = key or secrets.token_bytes(32)
        self.vault = vault
        self.namespace = namespace
        self.ttl = ttl

    def token(self, kind: str, value: str) -> str:
        """Return the pseudonym of ``value`` (and store it in the vault if any)."""
        label = label_for(kind)
        digest = hmac.new(
            self._key, f"{label}\x00{value}".encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()[:12]
        tok = f"{label}_{digest}"
        if self.vault is not None:
            self.vault.put(self.namespace, tok, value, ttl=self.ttl)
        return tok


@fast_init
@dataclass(frozen=True)
class Redaction:
    """Result of `redact`: the new text and what replaced what.

    Attributes:
        text: The text with findings replaced.
        replacements: ``(finding, replacement)`` per replaced span, in text order; the
            finding is the representative of overlapping findings merged into one span.
    """

    text: str
    replacements: list[tuple[Finding, str]]


def _mask(f: Finding) -> str:
    keep = 4 if f.kind in ("pii.credit_card", "pii.iban") else 0
    chars = list(f.text)
    alnum = [i for i, c in enumerate(chars) if c.isalnum()]
    for i in alnum[: max(0, len(alnum) - keep)]:
        chars[i] = "*"
    return "".join(chars)


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """Merge overlapping spans into one finding each (most severe, then longest, wins).

    A finding that overlaps nothing is returned as it is (the common case: no copy).
    """
    ordered = sorted(findings, key=_span_order)
    end = -1
    for f in ordered:  # most texts: nothing overlaps, and nothing is to be merged
        if f.start < end:
            break
        end = f.end
    else:
        return ordered
    groups: list[list[Finding]] = []
    end = -1
    for f in ordered:
        if groups and f.start < end:
            groups[-1].append(f)
            if f.end > end:
                end = f.end
        else:
            groups.append([f])
            end = f.end
    out = []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        best = max(g, key=lambda f: (f.severity, f.end - f.start))
        s, e = min(f.start for f in g), max(f.end for f in g)
        out.append(
            Finding(
                best.kind,
                s,
                e,
                best.severity,
                best.detail,
                best.detector,
                best.text if (s, e) == (best.start, best.end) else "",
                best.meta,
            )
        )
    return out


def _span_order(f: Finding) -> tuple[int, int]:
    return (f.start, -f.end)


def redact(
    text: str,
    findings: Sequence[Finding],
    *,
    mode: Mode = "redact",
    select: Callable[[Finding], bool] | None = is_sensitive,
    pseudonymizer: Pseudonymizer | None = None,
) -> Redaction:
    """Replace the spans of ``findings`` in ``text``.

    Args:
        text: The text the findings were produced on.
        findings: Findings of ``text`` (from any scanner run; nothing is re-scanned).
        mode: ``redact`` -> ``[EMAIL_1]`` (numbered per document, same value same number);
            ``mask`` -> ``****`` keeping separators (and the last 4 of card/IBAN numbers);
            ``pseudonymize`` -> ``EMAIL_3fa9c01b2d7e`` via ``pseudonymizer``.
        select: Which findings to act on; default `is_sensitive`; None means all.
        pseudonymizer: Used in ``pseudonymize`` mode (a fresh random-key one by default).

    Returns:
        A `Redaction` with the new text and the replacements made.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown redaction mode {mode!r}", hint=f"known: {', '.join(MODES)}")
    chosen = [f for f in findings if select is None or select(f)]
    for f in chosen:
        if not 0 <= f.start <= f.end <= len(text):
            raise ConfigError(
                f"finding span {f.start}:{f.end} is outside the text",
                hint="findings must come from scanning this same text",
            )
    if mode == "pseudonymize" and pseudonymizer is None:
        pseudonymizer = Pseudonymizer()
    numbers: dict[tuple[str, str], int] = {}
    per_label: dict[str, int] = {}
    parts: list[str] = []
    reps: list[tuple[Finding, str]] = []
    pos = 0
    for f in _merge(chosen):
        value = text[f.start : f.end]
        if f.text != value:
            f = Finding(f.kind, f.start, f.end, f.severity, f.detail, f.detector, value, f.meta)
        if mode == "redact":
            label = label_for(f.kind)
            key = (label, value)
            number = numbers.get(key)
            if number is None:
                number = numbers[key] = per_label[label] = per_label.get(label, 0) + 1
            rep = f"[{label}_{number}]"
        elif mode == "mask":
            rep = _mask(f)
        else:
            assert pseudonymizer is not None
            rep = pseudonymizer.token(f.kind, value)
        parts.append(text[pos : f.start])
        parts.append(rep)
        reps.append((f, rep))
        pos = f.end
    parts.append(text[pos:])
    return Redaction("".join(parts), reps)


def restore(text: str, vault: Vault, *, namespace: str = "default") -> str:
    """Replace pseudonym tokens in ``text`` by their original values found in ``vault``.

    Tokens unknown to the vault (or expired) are left as they are.
    """

    def sub(m: re.Match[str]) -> str:
        value = vault.get(namespace, m.group(0))
        return m.group(0) if value is None else value

    return _TOKEN_RE.sub(sub, text)
