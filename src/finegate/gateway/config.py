"""The gateway's configuration file (YAML), validated with pydantic.

See ``docs/gateway.md`` and ``src/finegate/resources/gateway/example.yaml`` for every field.
A tier bundles what a key may do: which models, which tools (with argument schemas), which
guard rules apply with which action, whether pseudonymized PII is restored in answers.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finegate.errors import ConfigError

Action = Literal["block", "redact", "pseudonymize", "flag", "review", "allow"]
Stage = Literal["input", "documents", "output", "tool_args"]

__all__ = [
    "GatewayConfig",
    "GuardRule",
    "RateLimits",
    "ReviewRule",
    "TierConfig",
    "ToolPolicy",
    "UpstreamConfig",
    "UsageConfig",
    "default_rules",
    "load_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardRule(_Model):
    """One guard rule: findings of ``kinds`` on ``stage`` at ``min_severity`` or more -> action.

    Attributes:
        stage: ``input`` (user messages), ``documents`` (retrieved documents and tool results),
            ``output`` (the model's answer), ``tool_args`` (arguments of the model's tool calls).
        kinds: Glob patterns over finding kinds (``pii.*``, ``secret.*``, ``leak.canary``).
        min_severity: Lowest severity acted on (``info`` .. ``critical``).
        action: ``block``, ``redact``, ``pseudonymize`` (input only; consistent placeholders),
            ``flag`` (log only), ``review`` (output and tool args: hold for a human),
            ``allow``.
        name: Rule name in logs and metrics (default: stage + first kind).
    """

    stage: Stage
    kinds: tuple[str, ...]
    action: Action
    min_severity: str = "info"
    name: str = ""

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        from finegate.detect import Severity

        return str(Severity.parse(v))

    def label(self) -> str:
        """The rule's name, or a derived one."""
        return self.name or f"{self.stage}:{self.kinds[0] if self.kinds else '*'}"

    def matches(self, kind: str) -> bool:
        """Whether a finding kind is covered by this rule."""
        return any(fnmatch.fnmatchcase(kind, pat) for pat in self.kinds)


class ReviewRule(_Model):
    """Hold an answer for human review: output findings of ``kinds``, or calls to ``tools``."""

    name: str = "review"
    kinds: tuple[str, ...] = ()
    min_severity: str = "high"
    tools: tuple[str, ...] = ()


class ToolPolicy(_Model):
    """Tools a tier may offer to and receive from the model.

    Attributes:
        allowed: Tool name -> JSON schema of its arguments (``{}`` accepts any object).
        allowed_hosts: Hosts URLs in tool arguments may point to (suffix match); any other
            host is an "unknown host" violation. Empty means URLs are not allowed at all.
        scan_arguments: Look for secrets, PII and URLs in arguments.
    """

    allowed: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = ()
    scan_arguments: bool = True


class RateLimits(_Model):
    """Per-key limits per minute (0 = unlimited)."""

    requests_per_minute: int = Field(default=0, ge=0)
    tokens_per_minute: int = Field(default=0, ge=0)


def default_rules() -> tuple[GuardRule, ...]:
    """The guard rules a tier gets when it names none."""
    return (
        GuardRule(stage="input", kinds=("pii.*",), action="pseudonymize", name="input-pii"),
        GuardRule(stage="input", kinds=("secret.*",), action="redact", name="input-secrets"),
        GuardRule(
            stage="input", kinds=("injection.*", "hidden.unicode_tags"), action="block",
            min_severity="high", name="input-injection",
        ),
        GuardRule(
            stage="documents", kinds=("injection.*", "hidden.*"), action="block",
            min_severity="high", name="indirect-injection",
        ),
        GuardRule(stage="output", kinds=("leak.canary",), action="redact", name="output-canary"),
        GuardRule(stage="output", kinds=("leak.system_prompt",), action="redact",
                  name="output-system-prompt"),
        GuardRule(stage="output", kinds=("secret.*",), action="redact", name="output-secrets"),
        GuardRule(stage="output", kinds=("pii.*",), action="redact", name="output-pii"),
        GuardRule(stage="tool_args", kinds=("secret.*", "pii.*"), action="block",
                  name="tool-args-sensitive"),
    )  # fmt: skip


# allows_model's answers by (patterns, model): matching the globs took ~0.7 us a request.
_ALLOWED_MODELS: dict[tuple[tuple[str, ...], str], bool] = {}


class TierConfig(_Model):
    """What keys of one tier may do and which guards apply to them."""

    models: tuple[str, ...] = ("*",)
    rules: tuple[GuardRule, ...] = Field(default_factory=default_rules)
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    review: tuple[ReviewRule, ...] = ()
    pii_restore: bool = False
    limits: RateLimits = Field(default_factory=RateLimits)

    def allows_model(self, model: str) -> bool:
        """Whether this tier may use ``model`` (glob patterns)."""
        key = (self.models, model)
        allowed = _ALLOWED_MODELS.get(key)
        if allowed is None:
            if len(_ALLOWED_MODELS) >= 4096:  # model names come from clients: bounded
                _ALLOWED_MODELS.clear()
            allowed = any(fnmatch.fnmatchcase(model, pat) for pat in self.models)
            _ALLOWED_MODELS[key] = allowed
        return allowed


class UpstreamConfig(_Model):
    """One model the gateway serves: the name clients use and the backend URI behind it."""

    name: str
    uri: str
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=1, ge=0)
    concurrency: int = Field(default=64, ge=1)
    api_key_env: str | None = None


class UsageConfig(_Model):
    """Extraction-probing detection per key (see `finegate.gateway.usage`)."""

    enabled: bool = True
    window_s: float = Field(default=300.0, gt=0)
    history: int = Field(default=64, ge=4)
    near_duplicate_similarity: float = Field(default=0.85, gt=0, le=1)
    near_duplicate_count: int = Field(default=20, ge=2)
    prefix_count: int = Field(default=12, ge=2)
    burst_chars: int = Field(default=16000, ge=1)
    burst_count: int = Field(default=10, ge=2)
    throttle: bool = True
    throttle_s: float = Field(default=300.0, ge=0)
    throttle_rpm: int = Field(default=5, ge=0)


class GatewayConfig(_Model):
    """The whole gateway configuration.

    Attributes:
        upstreams: Models served, by client-facing name.
        tiers: Tier name -> settings; keys name their tier.
        redis_url: Share rate limits (and throttles) through Redis; None keeps them in-process.
        request_log_retention_days: Request-log rows older than this are purged.
        max_body_bytes: Larger request bodies get 413.
        canaries: Strings that must never appear in an answer.
        system_prompts: Prompts whose verbatim reproduction is a leak.
        protect_request_system_prompt: Also treat each request's own system message as secret.
        internal_domains: Domains counted as internal hosts by the network detector.
        pseudonym_key_env: Environment variable with the HMAC key for PII placeholders
            (random per process when unset, so placeholders are consistent per process).
        key_cache_s: How long a key lookup (hash -> tier) is cached; revocation takes effect
            within this time.
        kill_switch_poll_s: How often the kill-switch state is read from the store.
        registry_poll_s: How often ``registry:`` upstreams are re-resolved.
        log_flush_s: How often queued request-log rows are written.
        request_log_writer: ``process`` (default): a child process writes the request log,
            keeping database work (and a busy thread contending for the GIL) out of the
            gateway process; ``thread``: a worker thread of the gateway writes it (always
            the case for an in-memory SQLite store, which no other process can open).
        metrics_public: Serve ``/metrics`` without a key.
        workers: Gateway processes sharing the port (see `finegate.gateway.workers`); more
            than one needs ``redis_url`` and a store other processes can open.
    """

    upstreams: tuple[UpstreamConfig, ...]
    tiers: dict[str, TierConfig] = Field(default_factory=lambda: {"default": TierConfig()})
    redis_url: str | None = None
    request_log: bool = True
    request_log_retention_days: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    canaries: tuple[str, ...] = ()
    system_prompts: tuple[str, ...] = ()
    protect_request_system_prompt: bool = True
    internal_domains: tuple[str, ...] = ()
    pseudonym_key_env: str | None = None
    key_cache_s: float = Field(default=5.0, ge=0)
    kill_switch_poll_s: float = Field(default=0.5, gt=0)
    registry_poll_s: float = Field(default=5.0, gt=0)
    log_flush_s: float = Field(default=0.5, gt=0)
    request_log_writer: Literal["process", "thread"] = "process"
    usage: UsageConfig = Field(default_factory=UsageConfig)
    metrics_public: bool = True
    workers: int = Field(default=1, ge=1, le=256)

    @field_validator("upstreams")
    @classmethod
    def _unique(cls, v: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
        names = [u.name for u in v]
        if not names:
            raise ValueError("at least one upstream is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique: {names}")
        return v

    def tier(self, name: str) -> TierConfig:
        """Return a tier by name.

        Raises:
            ConfigError: for an unknown tier.
        """
        try:
            return self.tiers[name]
        except KeyError:
            raise ConfigError(
                f"unknown tier {name!r}", hint=f"tiers: {', '.join(self.tiers)}"
            ) from None

    def upstream(self, name: str) -> UpstreamConfig | None:
        """Return the upstream clients call ``name``, if any."""
        return next((u for u in self.upstreams if u.name == name), None)


def load_config(source: Path | str | dict[str, Any]) -> GatewayConfig:
    """Read and validate a gateway configuration from a YAML file or a mapping.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    import yaml

    where = "gateway config"
    if isinstance(source, dict):
        data: Any = source
    else:
        path = Path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read gateway config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with 'upstreams'")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid {where}: {problems}") from None
