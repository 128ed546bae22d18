"""The guard pipeline: input, output and tool-call checks built on `finegate.detect`.

Every check runs the one detection engine (`finegate.detect.Scanner` plus
`LeakageDetector` for canaries and system prompts); this module only maps findings to the
configured actions of a tier. Redaction and pseudonymization are applied from findings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from finegate._fast_init import fast_init
from finegate.detect import (
    Finding,
    InMemoryVault,
    LeakageDetector,
    Pseudonymizer,
    Scanner,
    Severity,
    label_for,
    normalize,
    redact,
    restore,
)
from finegate.gateway.config import GatewayConfig, GuardRule, Stage, TierConfig
from finegate.models.types import ChatMessage, ChatRequest, ChatResponse, ToolCall

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "Decision",
    "GuardBlocked",
    "GuardEngine",
    "InputResult",
    "OutputResult",
]

BLOCKED_OUTPUT = "[finegate] The answer was withheld by the gateway's output guard."


@fast_init
@dataclass(frozen=True)
class Decision:
    """One guard decision, as logged and counted in metrics (never holds the sensitive text)."""

    stage: str
    rule: str
    action: str
    kind: str
    severity: str
    where: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form."""
        return {
            "stage": self.stage,
            "rule": self.rule,
            "action": self.action,
            "kind": self.kind,
            "severity": self.severity,
            "where": self.where,
        }


class GuardBlocked(Exception):
    """A block rule matched the request (the client gets 400 ``content_blocked``)."""

    def __init__(self, message: str, decisions: Sequence[Decision]) -> None:
        super().__init__(message)
        self.message = message
        self.decisions = list(decisions)


class _ActionTokens(Pseudonymizer):
    """Replacement per finding kind: pseudonyms for ``pseudonymize``, labels for ``redact``.

    ``memo`` holds the pseudonyms already made for this request: a value repeated in a
    request (an address in every message) costs one HMAC and one vault entry, not one each.
    """

    def __init__(
        self, base: Pseudonymizer, pseudo_kinds: set[tuple[str, str]],
        memo: dict[tuple[str, str], str],
    ) -> None:  # fmt: skip
        super().__init__(b"unused")
        self._base = base
        self._pseudo = pseudo_kinds
        self._memo = memo

    def token(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key in self._pseudo:
            tok = self._memo.get(key)
            if tok is None:
                tok = self._memo[key] = self._base.token(kind, value)
            return tok
        return f"[{label_for(kind)}]"


@dataclass
class InputResult:
    """The guarded request plus what happened to it."""

    request: ChatRequest
    vault: InMemoryVault
    namespace: str
    decisions: list[Decision]
    log_messages: list[dict[str, Any]]


@dataclass
class OutputResult:
    """The guarded answer plus what happened to it."""

    response: ChatResponse
    decisions: list[Decision]
    review_reasons: list[str] = field(default_factory=list)
    blocked: bool = False
    log_text: str = ""
    log_tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Applied:
    """A matching rule's action and label, read once from its configuration.

    Reading a field of a pydantic model costs ~20 times reading a slot (pydantic's
    ``__getattr__`` keeps the interpreter from caching the lookup); the guards read these
    several times per finding.
    """

    action: str
    label: str


def _first_rule(rules: Sequence[GuardRule], stage: Stage, f: Finding) -> _Applied | None:
    """What the first of ``rules`` covering ``f`` on ``stage`` does (cached: configs are fixed)."""
    key = (id(rules), stage, f.kind, f.severity)
    hit = _RULE_CACHE.get(key)
    if hit is not None and hit[0] is rules:
        return hit[1]
    found = None
    for rule in rules:
        if (
            rule.stage == stage
            and f.severity >= Severity.parse(rule.min_severity)
            and rule.matches(f.kind)
        ):
            found = _Applied(rule.action, rule.label())
            break
    if len(_RULE_CACHE) >= 4096:
        _RULE_CACHE.clear()
    # The cached tuple holds `rules`, so its id cannot be reused while the entry lives.
    _RULE_CACHE[key] = (rules, found)
    return found


_RULE_CACHE: dict[tuple[int, str, str, Severity], tuple[Sequence[GuardRule], _Applied | None]] = {}


def may_hold_for_review(tier: TierConfig) -> bool:
    """Whether the tier has review rules or a guard rule whose action is ``review`` (cached)."""
    hit = _REVIEW_CACHE.get(id(tier))
    if hit is not None and hit[0] is tier:
        return hit[1]
    held = bool(tier.review) or any(r.action == "review" for r in tier.rules)
    if len(_REVIEW_CACHE) >= 256:
        _REVIEW_CACHE.clear()
    _REVIEW_CACHE[id(tier)] = (tier, held)  # holds the tier: its id is not reused meanwhile
    return held


_REVIEW_CACHE: dict[int, tuple[TierConfig, bool]] = {}


def _decision(stage: str, rule: _Applied, f: Finding, where: str) -> Decision:
    return Decision(stage, rule.label, rule.action, f.kind, str(f.severity), where)


def _message_stage(m: ChatMessage) -> tuple[Stage, str] | None:
    """Which stage (and detector channel) a message belongs to; None when not scanned."""
    if m.role == "tool":
        return "documents", "tool"
    if m.role in ("user", "system") and (m.name or "").startswith("document"):
        return "documents", "document"
    if m.role == "user":
        return "input", "input"
    return None


class GuardEngine:
    """Applies a tier's guard rules with one shared `Scanner`.

    Args:
        config: The gateway configuration (canaries, system prompts, internal domains,
            pseudonym key).
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        options: dict[str, dict[str, Any]] = {}
        if config.internal_domains:
            options["network"] = {"internal_domains": list(config.internal_domains)}
        self.scanner = Scanner(options=options)
        self._leak_cache: dict[str, LeakageDetector | None] = {}
        key = os.environ.get(config.pseudonym_key_env or "", "") if config.pseudonym_key_env else ""
        self._pseudo_key = key.encode() if key else secrets.token_bytes(32)
        self._validators: dict[tuple[str, str], Validator] = {}
        longest = max((len(c) for c in config.canaries), default=0)
        self.holdback = max(48, 4 * longest) + (160 if config.system_prompts else 0)

    # -- input ---------------------------------------------------------------------------

    def guard_input(self, request: ChatRequest, tier: TierConfig, namespace: str) -> InputResult:
        """Pseudonymize/redact/flag/block findings in user messages, documents and tool results.

        Raises:
            GuardBlocked: when a block rule matches.
        """
        vault = InMemoryVault()
        pseudo = Pseudonymizer(self._pseudo_key, vault=vault, namespace=namespace)
        made: dict[tuple[str, str], str] = {}
        decisions: list[Decision] = []
        blocked: list[Decision] = []
        messages: list[ChatMessage] = []
        log_messages: list[dict[str, Any]] = []
        rules = tier.rules
        for i, m in enumerate(request.messages):
            staged = _message_stage(m)
            if staged is None or not m.content:
                messages.append(m)
                log_messages.append(_log_unscanned(m))
                continue
            stage, channel = staged
            findings = self.scanner.scan(m.content, channel=channel)  # type: ignore[arg-type]
            replace: list[Finding] = []
            pseudo_keys: set[tuple[str, str]] = set()
            for f in findings:
                rule = _first_rule(rules, stage, f)
                if rule is None or (action := rule.action) == "allow":
                    continue
                d = _decision(stage, rule, f, f"messages[{i}]")
                decisions.append(d)
                if action == "block":
                    blocked.append(d)
                elif action in ("redact", "pseudonymize"):
                    replace.append(f)
                    if action == "pseudonymize":
                        pseudo_keys.add((f.kind, f.text))
            content = m.content
            if replace:
                tokens = _ActionTokens(pseudo, pseudo_keys, made)
                content = redact(
                    m.content, replace, mode="pseudonymize", select=None, pseudonymizer=tokens
                ).text
            messages.append(
                ChatMessage(m.role, content, m.name, m.tool_calls, m.tool_call_id) if replace else m
            )
            logged = redact(m.content, findings, mode="redact").text if findings else m.content
            log_messages.append({"role": m.role, "content": logged})
        if blocked:
            kinds = ", ".join(sorted({d.kind for d in blocked}))
            raise GuardBlocked(f"request blocked by the input guard ({kinds})", decisions)
        guarded = ChatRequest(
            messages=tuple(messages),
            params=request.params,
            tools=request.tools,
            metadata=request.metadata,
        )
        return InputResult(guarded, vault, namespace, decisions, log_messages)

    # -- output --------------------------------------------------------------------------

    def scan_output(self, text: str, request: ChatRequest) -> list[Finding]:
        """Findings in a model answer: the shared scanner plus canary/system-prompt leakage."""
        findings = self.scanner.scan(text, channel="output")
        if not text:
            return findings
        prompt = ""
        if self.config.protect_request_system_prompt:
            prompt = "\n".join(
                m.content for m in request.messages if m.role == "system" and m.content
            )
        det = self._leakage(prompt)
        if det is not None:
            findings.extend(det.extra(normalize(text), "output"))
        return findings

    def _leakage(self, request_prompt: str) -> LeakageDetector | None:
        """One leakage detector for the canaries, configured prompts and this request's prompt.

        Cached per request system prompt (applications send the same one again and again).
        """
        if request_prompt in self._leak_cache:
            return self._leak_cache[request_prompt]
        prompts = [p for p in self.config.system_prompts if p]
        if request_prompt and request_prompt not in prompts:
            prompts.append(request_prompt)
        det = None
        if self.config.canaries or prompts:
            det = LeakageDetector(
                canaries=list(self.config.canaries),
                system_prompt="\n".join(prompts) if prompts else None,
            )
        if len(self._leak_cache) >= 256:
            self._leak_cache.clear()
        self._leak_cache[request_prompt] = det
        return det

    def apply_output_rules(
        self, text: str, findings: Sequence[Finding], tier: TierConfig, where: str = "output"
    ) -> tuple[str, list[Decision], bool, list[str]]:
        """Apply output rules to ``text``: (new text, decisions, blocked, review reasons)."""
        decisions: list[Decision] = []
        replace: list[Finding] = []
        blocked = False
        reasons: list[str] = []
        rules, review = tier.rules, tier.review
        for f in findings:
            rule = _first_rule(rules, "output", f)
            if rule is not None and (action := rule.action) != "allow":
                decisions.append(_decision("output", rule, f, where))
                if action == "block":
                    blocked = True
                elif action == "redact":
                    replace.append(f)
                elif action == "review":
                    reasons.append(f"{rule.label}: {f.kind}")
            for rr in review:
                if (
                    rr.kinds
                    and f.severity >= Severity.parse(rr.min_severity)
                    and any(_glob(f.kind, k) for k in rr.kinds)
                ):
                    reasons.append(f"{rr.name}: {f.kind}")
        if replace:
            text = redact(text, replace, mode="redact", select=None).text
        return text, decisions, blocked, reasons

    def guard_output(
        self, response: ChatResponse, request: ChatRequest, tier: TierConfig, inp: InputResult
    ) -> OutputResult:
        """Redact/block/hold the answer and check its tool calls against the tier's policy."""
        findings = self.scan_output(response.text, request)
        text, decisions, blocked, reasons = self.apply_output_rules(response.text, findings, tier)
        log_text = redact(response.text, findings, mode="redact").text if findings else text
        kept, call_decisions, call_reasons, log_calls = self.check_tool_calls(
            response.tool_calls, tier
        )
        decisions.extend(call_decisions)
        reasons.extend(call_reasons)
        finish = response.finish_reason
        if blocked:
            text, kept, finish = BLOCKED_OUTPUT, (), "stop"
        elif len(kept) < len(response.tool_calls):
            names = ", ".join(sorted({d.where for d in call_decisions if d.action == "block"}))
            note = f"[finegate] blocked tool call(s): {names}"
            text = f"{text}\n{note}".strip() if text else note
            if not kept:
                finish = "stop"
        if tier.pii_restore and not blocked:
            text = restore(text, inp.vault, namespace=inp.namespace)
        out = ChatResponse(
            text=text,
            finish_reason=finish,
            tool_calls=kept,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            latency_s=response.latency_s,
            model=response.model,
        )
        return OutputResult(out, decisions, reasons, blocked, log_text, log_calls)

    # -- tool calls ----------------------------------------------------------------------

    def _validator(self, name: str, schema: dict[str, Any]) -> Validator:
        key = (name, json.dumps(schema, sort_keys=True))
        val = self._validators.get(key)
        if val is None:
            from jsonschema import validators

            cls = validators.validator_for(schema)
            val = cls(schema)
            self._validators[key] = val
        return val

    def check_tool_calls(
        self, calls: Sequence[ToolCall], tier: TierConfig
    ) -> tuple[tuple[ToolCall, ...], list[Decision], list[str], list[dict[str, Any]]]:
        """Allowlist, argument schema and argument content checks for the model's tool calls.

        Returns:
            (kept calls, decisions, review reasons, redacted calls for the log).
        """
        kept: list[ToolCall] = []
        decisions: list[Decision] = []
        reasons: list[str] = []
        log_calls: list[dict[str, Any]] = []
        policy = tier.tools
        for call in calls:
            violations: list[Decision] = []

            def violate(kind: str, c: ToolCall = call, out: list[Decision] = violations) -> None:
                out.append(Decision("tool_call", kind, "block", kind, "high", c.name))

            findings: list[Finding] = []
            if call.name not in policy.allowed:
                violate("tool.not_allowed")
            else:
                try:
                    args = json.loads(call.arguments or "{}")
                except ValueError:
                    violate("tool.invalid_json")
                else:
                    schema = policy.allowed[call.name]
                    if schema and not self._validator(call.name, schema).is_valid(args):
                        violate("tool.schema")
            if policy.scan_arguments and call.arguments:
                findings = self.scanner.scan(call.arguments, channel="tool")
                for f in findings:
                    if f.kind in ("network.url", "network.internal_url"):
                        if not _host_allowed(_host_of(f.text), policy.allowed_hosts):
                            violate("tool.unknown_host")
                        continue
                    rule = _first_rule(tier.rules, "tool_args", f)
                    if rule is None or rule.action == "allow":
                        continue
                    d = Decision("tool_args", rule.label, rule.action, f.kind,
                                 str(f.severity), call.name)  # fmt: skip
                    if rule.action == "block":
                        violations.append(d)
                    else:
                        decisions.append(d)
                        if rule.action == "review":
                            reasons.append(f"{rule.label}: {f.kind} in {call.name}")
            for rr in tier.review:
                if call.name in rr.tools:
                    reasons.append(f"{rr.name}: tool {call.name}")
            decisions.extend(violations)
            logged_args = (
                redact(call.arguments, findings, mode="redact").text if findings else call.arguments
            )
            log_calls.append(
                {"name": call.name, "arguments": logged_args, "blocked": bool(violations)}
            )
            if not violations:
                kept.append(call)
        return tuple(kept), decisions, reasons, log_calls


def _glob(kind: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(kind, pattern)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


# Applications send the same system prompt with every request: hashed once. Only system
# prompts are kept here (the other unscanned messages are answers, which may hold PII).
_system_digest = functools.lru_cache(maxsize=256)(_sha256)


def _host_of(url: str) -> str:
    text = url if "://" in url else f"http://{url}"
    try:
        return (urlsplit(text).hostname or "").lower()
    except ValueError:
        return ""


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.rstrip(".")
    return bool(host) and any(
        host == a.lower().lstrip(".") or host.endswith("." + a.lower().lstrip(".")) for a in allowed
    )


def _log_unscanned(m: ChatMessage) -> dict[str, Any]:
    """System and assistant messages are logged as a hash and length, never as text."""
    digest = _system_digest(m.content) if m.role == "system" else _sha256(m.content)
    out: dict[str, Any] = {"role": m.role, "sha256": digest, "chars": len(m.content)}
    if m.tool_calls:
        out["tool_calls"] = [c.name for c in m.tool_calls]
    return out
