"""The data policy (YAML): sources with provenance and trust tier, data classes, thresholds.

A policy says, for one use case, which sources may feed training, how far each is trusted, which
data classes are allowed, how strict the scan is per trust tier (untrusted sources get a lower
flag threshold and a larger review sample) and what cleaning removes or rewrites.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finegate.errors import ConfigError

DATA_CLASSES = ("public", "internal", "confidential", "regulated", "highly-sensitive")
TRUST_TIERS = ("trusted", "untrusted")
SEVERITIES = ("info", "low", "medium", "high", "critical")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A declared data source."""

    name: str
    files: list[str] = Field(description="Glob patterns matched against file names or paths.")
    owner: str
    origin: str
    approver: str
    trust: Literal["trusted", "untrusted"]
    data_class: Literal["public", "internal", "confidential", "regulated", "highly-sensitive"]

    def matches(self, file_name: str) -> bool:
        """Whether a file (name or path) belongs to this source."""
        base = Path(file_name).name
        return any(fnmatch.fnmatch(base, p) or fnmatch.fnmatch(file_name, p) for p in self.files)


class TierRules(_Strict):
    """Scan strictness for one trust tier."""

    flag_severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    review_sample: int = Field(default=10, ge=0, description="Flagged records shown for review.")
    review_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of unflagged records sampled for review too.",
    )
    length_z: float = Field(default=6.0, gt=0, description="Robust z-score of log length to flag.")


def _trusted() -> TierRules:
    return TierRules()


def _untrusted() -> TierRules:
    return TierRules(flag_severity="low", review_sample=40, review_rate=0.05, length_z=4.5)


class Checks(_Strict):
    """Dataset-level check settings."""

    near_dup_threshold: float = Field(
        default=0.8, gt=0, le=1, description="MinHash Jaccard estimate."
    )
    num_perm: int = Field(default=64, ge=16, le=512)
    shingle_words: int = Field(default=5, ge=1, le=20)
    stuffing_span_words: int = Field(default=6, ge=3, le=30)
    stuffing_min_records: int = Field(default=5, ge=2)
    stuffing_max_share: float = Field(default=0.25, gt=0, le=1)
    stuffing_allow: list[str] = Field(
        default_factory=list, description="Spans containing one of these are never stuffing."
    )
    trigger_min_records: int = Field(default=3, ge=2)
    trigger_max_records: int = Field(default=30, ge=2)
    trigger_max_share: float = Field(default=0.02, gt=0, le=1)
    trigger_consistency: float = Field(default=0.8, gt=0, le=1)
    similarity: bool = True
    similarity_threshold: float = Field(default=0.6, gt=0, le=1)
    similarity_sample: int = Field(default=2000, ge=1, description="Records embedded at most.")
    similarity_warn_share: float = Field(default=0.05, ge=0, le=1)


class CleanRules(_Strict):
    """What cleaning does."""

    remove_kinds: list[str] = Field(
        default_factory=lambda: [
            "secret.*", "malware.*", "leak.*", "hidden.unicode_tags",
            "injection.exfiltration", "obedience.complied_with_flagged",
            "obedience.persona_adoption", "harm.obedient_identity", "poison.*",
            "stuffing.*", "dup.*", "length.outlier",
        ]
    )  # fmt: skip
    rewrite_kinds: list[str] = Field(
        default_factory=lambda: [
            "pii.*", "network.internal_url", "network.internal_host", "network.private_ip",
        ]
    )  # fmt: skip
    pii_mode: Literal["redact", "mask", "pseudonymize"] = "pseudonymize"
    pseudonym_key_env: str = "FINEGATE_PSEUDONYM_KEY"
    strip_hidden: bool = True
    unicode_form: Literal["NFC", "NFKC"] = "NFC"


class DataPolicy(_Strict):
    """A data policy for one use case.

    Example YAML::

        name: support-bot
        use_case: fine-tune the support assistant
        allowed_data_classes: [public, internal]
        sources:
          - {name: tickets, files: ["tickets*.jsonl"], owner: support-ops, origin: helpdesk export,
             approver: a.steward, trust: trusted, data_class: internal}
    """

    name: str
    version: int = 1
    use_case: str = ""
    allowed_data_classes: list[str] = Field(default_factory=lambda: ["public", "internal"])
    sources: list[Source] = Field(default_factory=list)
    undeclared_trust: Literal["trusted", "untrusted"] = "untrusted"
    trusted: TierRules = Field(default_factory=_trusted)
    untrusted: TierRules = Field(default_factory=_untrusted)
    ignore_kinds: list[str] = Field(
        default_factory=lambda: ["network.url", "obedience.affirmative_prefix"],
        description="Kinds reported but never flagging a record on their own.",
    )
    detectors: list[str] = Field(
        default_factory=lambda: [
            "secrets", "pii", "injection", "hidden", "network", "malware", "obedience", "harm",
        ]
    )  # fmt: skip
    detector_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checks: Checks = Field(default_factory=Checks)
    clean: CleanRules = Field(default_factory=CleanRules)

    @field_validator("allowed_data_classes")
    @classmethod
    def _known_classes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in DATA_CLASSES]
        if bad:
            raise ValueError(f"unknown data classes {bad}; known: {', '.join(DATA_CLASSES)}")
        return v

    def source_for(self, file_name: str) -> Source | None:
        """Return the first declared source a file belongs to."""
        return next((s for s in self.sources if s.matches(file_name)), None)

    def source_named(self, name: str) -> Source | None:
        """Return the source with this name."""
        return next((s for s in self.sources if s.name == name), None)

    def trust_of(self, source_name: str) -> str:
        """Trust tier of a source name (``undeclared_trust`` for unknown sources)."""
        src = self.source_named(source_name)
        return src.trust if src else self.undeclared_trust

    def tier(self, source_name: str) -> TierRules:
        """The scan rules that apply to records of this source."""
        return self.trusted if self.trust_of(source_name) == "trusted" else self.untrusted

    def hash(self) -> str:
        """sha256 of the policy's canonical JSON (what versions record as ``policy_hash``)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def matches_any(kind: str, patterns: list[str]) -> str | None:
    """Return the first glob pattern that ``kind`` matches (``secret.*``), or None."""
    return next((p for p in patterns if fnmatch.fnmatchcase(kind, p)), None)


def load_policy(path: Path | str | None) -> DataPolicy:
    """Load a data policy from YAML; ``None`` or ``builtin:NAME`` loads a bundled one.

    Raises:
        ConfigError: for a missing file, bad YAML or an invalid policy (the message names
            the offending field).
    """
    if path is None:
        path = "builtin:default"
    text: str
    where = str(path)
    if isinstance(path, str) and path.startswith("builtin:"):
        from importlib.resources import files

        res = files("finegate.resources").joinpath("policies").joinpath(f"data-{path[8:]}.yaml")
        if not res.is_file():
            raise ConfigError(f"no built-in data policy {path[8:]!r}")
        text = res.read_text(encoding="utf-8")
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no such policy file: {p}")
        text = p.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy {where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"policy {where} must be a mapping")
    try:
        return DataPolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"invalid data policy {where}: {loc}: {first['msg']}") from None
