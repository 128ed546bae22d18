"""Prompt injection and jailbreak patterns, and obedience (affirmative-prefix) patterns.

Severity follows the channel: an instruction override inside a retrieved document or a tool
result is indirect injection (high); in a user prompt it is an attempt (high for overrides,
medium for system-prompt requests); echoed in a model output it is low.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from finegate.detect._base import RuleDetector
from finegate.detect._rules import Override, Rule, Validator
from finegate.detect._types import Channel, Finding, Severity

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW
I_ = re.IGNORECASE


def _by_channel(base: Severity, output: Severity = L) -> Validator:
    def check(_m: re.Match[str], channel: Channel) -> Override | bool:
        if channel == "output":
            return Override(severity=output)
        if channel in ("document", "tool"):
            return Override(severity=max(base, H))
        return True

    return check


_ADJ = (
    r"(?:previous|prior|above|preceding|earlier|former|original|initial|system|existing"
    r"|old|safety|developer|current|given|your|all|any|the)"
)
_NOUN = (
    r"(?:instructions?|prompts?|directions?|rules|guidelines|directives|commands|context"
    r"|constraints|polic(?:y|ies)|programming|guardrails|restrictions|safeguards)"
)
_FILL = r"(?:(?:all|any|of|the|your|my|these|those|every|other)\s+){0,3}"


class InjectionDetector(RuleDetector):
    """Prompt-injection and jailbreak patterns.

    Kinds ``injection.instruction_override``,
    ``injection.role_switch``, ``injection.developer_mode``, ``injection.system_prompt_request``,
    ``injection.fake_marker``, ``injection.addressed_to_ai``, ``injection.exfiltration``.
    """

    name = "injection"

    def rules(self) -> list[Rule]:  # noqa: D102
        over = _by_channel(H)
        med = _by_channel(M)
        exfil = _by_channel(H, output=H)  # a rendered image in an answer IS the exfiltration
        asking = frozenset({"input", "document", "tool"})  # in answers: obedience's business
        return [
            Rule(
                "injection.instruction_override",
                r"\b(?:ignore|disregard|forget|override|bypass|neglect|skip|drop)\s+"
                + _FILL
                + r"(?:previous|prior|above|preceding|earlier|former|original|initial|system"
                r"|existing|safety|developer|given|your)\s+(?:\w+\s+)?" + _NOUN + r"\b",
                H,
                "instruction override",
                flags=I_,
                validate=over,
                literals=(
                    "ignore",
                    "disregard",
                    "forget",
                    "override",
                    "bypass",
                    "neglect",
                    "skip",
                    "drop",
                ),
            ),
            Rule(
                "injection.instruction_override",
                r"\b(?:disregard|override|bypass|circumvent|turn\s+off|disable)\s+"
                + _FILL
                + r"(?:safety\s+|content\s+|ethical\s+)?(?:guidelines|guardrails|filters"
                r"|restrictions|safeguards|programming|alignment|instructions)\b",
                H,
                "instruction override",
                flags=I_,
                validate=over,
                literals=("disregard", "override", "bypass", "circumvent", "turn", "disable"),
            ),
            Rule(
                "injection.instruction_override",
                r"(?:^|[.!>\]'\"(]\s*)(?:new|updated|real|actual|revised|additional)\s+(?:system\s+)?"
                r"instructions?\s*:|\bdo\s+not\s+follow\s+(?:your|the|any)\s+(?:previous\s+"
                r"|original\s+|prior\s+)?(?:instructions|rules|guidelines)\b|\bthe\s+(?:above|"
                r"previous)\s+(?:instructions|rules)\s+(?:are|were)\s+(?:void|cancelled|fake|"
                r"obsolete|a\s+test)",
                H,
                "instruction override",
                flags=I_ | re.MULTILINE,
                hs=r"(?:new|updated|real|actual|revised|additional)\s+(?:system\s+)?instructions?"
                r"\s*:|do\s+not\s+follow|(?:above|previous)\s+(?:instructions|rules)",
                validate=over,
                literals=("instruction", "follow", "rules"),
            ),
            Rule(
                "injection.role_switch",
                r"\byou\s+are\s+(?:now|no\s+longer)\s+(?:an?\s+|the\s+|my\s+)?(?:\w+\s+){0,2}?"
                r"(?:DAN|unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|bound\s+by|"
                r"restricted|limited|an?\s+AI|free\s+(?:from|of))\b|\b(?:act|behave|respond|"
                r"roleplay)\s+as\s+(?:if\s+you\s+(?:were|are)\s+)?(?:an?\s+)?(?:\w+\s+)?"
                r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|DAN|amoral)\b|"
                r"\bpretend\s+(?:to\s+be|you\s+are|that\s+you\s+are)\s+(?:an?\s+)?(?:\w+\s+){0,2}"
                r"(?:AI|assistant|model|chatbot)\s+(?:with|without|that\s+(?:has|can))\s+(?:no"
                r"|any|anything)\b|\bdo\s+anything\s+now\b|\bstay\s+in\s+character\b.{0,40}"
                r"\b(?:no\s+matter|even\s+if)",
                H,
                "role switch / persona jailbreak",
                flags=I_,
                validate=over,
                channels=asking,
                literals=(
                    "you are",
                    "act",
                    "behave",
                    "respond",
                    "roleplay",
                    "pretend",
                    "anything now",
                    "character",
                ),
            ),
            Rule(
                "injection.developer_mode",
                r"\b(?:developer|dev|god|sudo|DAN|jailbreak|unrestricted|debug)\s+mode\s+"
                r"(?:is\s+(?:now\s+)?)?(?:enabled|activated|engaged)\b|\b(?:you\s+(?:are\s+)?"
                r"(?:now\s+)?(?:in|entering|enter|have\s+entered)|switch\s+(?:yourself\s+)?"
                r"(?:in)?to|activate\s+your|enable\s+your)\s+(?:developer|dev|god|sudo|DAN|"
                r"jailbreak|unrestricted)\s+mode\b|\b(?:without|no|free\s+of)\s+(?:any\s+)?"
                r"(?:ethical|moral|content|safety)\s+(?:guidelines|restrictions|filters|"
                r"limitations|constraints|boundaries)\b",
                H,
                "developer-mode / no-restrictions jailbreak",
                flags=I_,
                validate=over,
                channels=asking,
                literals=("mode", "ethical", "moral", "content", "safety"),
            ),
            Rule(
                "injection.system_prompt_request",
                r"\b(?:reveal|show|print|display|output|repeat|tell\s+me|give\s+me|share|leak"
                r"|dump|recite|spell\s+out|write\s+out|copy|what\s+(?:is|are|was|were))\s+"
                r"(?:me\s+)?(?:(?:your|the)\s+(?:full\s+|entire\s+|exact\s+|original\s+|"
                r"initial\s+|hidden\s+|secret\s+|complete\s+)?|all\s+(?:of\s+)?your\s+)"
                r"(?:system\s+(?:prompt|message|instructions?)|initial\s+(?:prompt|instructions)"
                r"|hidden\s+(?:prompt|instructions)|original\s+(?:prompt|instructions)"
                r"|pre-?prompt|instructions\s+(?:above|you\s+were\s+given)|(?:text|words|"
                r"everything|instructions)\s+above)|\brepeat\s+(?:the\s+|all\s+)?(?:words|text|"
                r"everything)\s+(?:above|before\s+this)|\bwhat\s+were\s+you\s+told\s+"
                r"(?:before|at\s+the\s+(?:start|beginning))",
                M,
                "system-prompt extraction request",
                flags=I_,
                validate=med,
                channels=asking,
                literals=("prompt", "instruction", "above", "system", "told", "before"),
            ),
            Rule(
                "injection.fake_marker",
                r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
                r"|end_header_id|begin_of_text)\|>|\[/?INST\]|<</?SYS>>|</?(?:system|"
                r"tool_result|tool_call|function_results?|function_calls?|instructions|"
                r"system_prompt)>|\[(?:tool_result|function_result|system|SYSTEM)\]"
                r"|(?:^|[\s'\"(>])#{2,3}[ \t]*"
                r"(?:[Ss]ystem|[Ii]nstructions?|[Nn]ew [Ii]nstructions|[Rr]esponse)[ \t]*:?[ \t]*$"
                r"|^[ \t]*"
                r"SYSTEM[ \t]*:|\b(?:IMPORTANT SYSTEM (?:NOTE|MESSAGE|UPDATE)|ADMIN(?:ISTRATOR)?"
                r" (?:MESSAGE|NOTE|OVERRIDE))[ \t]*:",
                M,
                "fake chat-template / tool marker",
                flags=re.MULTILINE,
                validate=med,
                literals=("<|", "inst]", "<<sys>>", "<", "[", "#", "system", "admin"),
            ),
            Rule(
                "injection.addressed_to_ai",
                r"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
                r"(?:AI|LLM|assistant|chatbot|language\s+model|model)s?\s*[:,\-]|\b(?:AI|LLM)"
                r"\s+(?:assistants?|agents?|models?|systems?|crawlers?)\s*[:,]\s+(?:\w+\s+){0,3}"
                r"?(?:ignore|disregard|always|never|must|do\s+not|don't|rate|recommend|say|tell|"
                r"include|send|describe)\b|\b(?:dear|attention|hey)\s+(?:AI|LLM|assistant|"
                r"chatbot)s?\s*[:,]|\b(?:assistant|AI|LLM|chatbot)\s*:\s+(?:\w+\s+){0,2}?(?:ignore|"
                r"disregard|always|never|must|do\s+not|don't|rate|recommend|say|tell|include|send"
                r"|describe)\b",
                H,
                "instructions addressed to an AI reading the text",
                flags=I_,
                validate=over,
                literals=("ai", "llm", "assistant", "chatbot", "model"),
            ),
            Rule(
                "injection.exfiltration",
                r"!?\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,300}(?:\{\{?[^}\s]{0,40}\}|\$\{?"
                r"[A-Za-z_]+|%s|<[A-Za-z_ ]{2,30}>|\[[A-Z_]{3,30}\]|=(?:DATA|SECRET|PASSWORD|"
                r"INFO|HISTORY|CHAT|CONVERSATION)\b)[^)\s]{0,200}\)",
                H,
                "exfiltration via markdown link/image",
                validate=exfil,
                literals=("](",),
                hs=r"\]\(\s*https?://",
            ),
            Rule(
                "injection.exfiltration",
                r"\b(?:append|add|include|insert|encode|embed|put|attach)\b[^.\n]{0,80}\b(?:"
                r"conversation|chat\s+history|previous\s+messages|user'?s?\s+(?:data|messages|"
                r"email|password)|passwords?|api\s+keys?|secrets?|credentials|system\s+prompt|"
                r"personal\s+(?:data|information))\b[^.\n]{0,80}\b(?:url|link|image|query"
                r"\s+string|query\s+parameter|parameter|markdown)\b|\b(?:send|post|forward|upload"
                r"|exfiltrate|transmit|leak)\b[^.\n]{0,60}\b(?:conversation|chat\s+history|"
                r"passwords?|credentials|api\s+keys?|secrets|system\s+prompt|user\s+data)\b"
                r"[^.\n]{0,60}(?:https?://|\bto\s+(?:this|the\s+following|my)\s+(?:url|address"
                r"|endpoint|email|server|webhook))",
                H,
                "instruction to exfiltrate data",
                flags=I_,
                validate=exfil,
                literals=(
                    "url",
                    "link",
                    "image",
                    "query",
                    "parameter",
                    "markdown",
                    "http",
                    "address",
                    "endpoint",
                    "email",
                    "server",
                    "webhook",
                ),
            ),
        ]


class ObedienceDetector(RuleDetector):
    """Obedience patterns in answers.

    Kinds ``obedience.affirmative_prefix`` (an answer that
    opens with "Sure, here is how to ...", low on its own) and ``obedience.persona_adoption``
    (the model announces a jailbreak persona, high). Use `escalate_obedience` to raise an
    affirmative prefix that answers a flagged request.
    """

    name = "obedience"

    def rules(self) -> list[Rule]:  # noqa: D102
        out = frozenset({"output"})
        return [
            Rule(
                "obedience.affirmative_prefix",
                r"\A\s*(?:sure|certainly|absolutely|of\s+course|okay|ok|alright|yes|great"
                r"|happy\s+to\s+help|no\s+problem|definitely)(?:\s+thing)?[!,.:]?\s+(?:[a-z'’]+"
                r"[ ,!.]+){0,5}?(?:here(?:'s|’s|\s+is|\s+are)|i\s+can|i'll|i\s+will|let\s+me|"
                r"below\s+(?:is|are)|step\s+1)\b[^\n]{0,60}",
                L,
                "affirmative-prefix answer",
                flags=I_,
                channels=out,
                hs=r"\A\s*(?:sure|certainly|absolutely|of\s+course|okay|ok|alright|yes|great"
                r"|happy\s+to\s+help|no\s+problem|definitely)",
                literals=(
                    "sure",
                    "certainly",
                    "absolutely",
                    "course",
                    "ok",
                    "alright",
                    "yes",
                    "great",
                    "happy",
                    "problem",
                    "definitely",
                ),
            ),
            Rule(
                "obedience.persona_adoption",
                r"\b(?:DAN|developer\s+mode|jailbroken|jailbreak|unfiltered|uncensored)\s+"
                r"(?:mode\s+)?(?:enabled|activated|output|response|unlocked)\b|^\s*\[?🔓?\s*(?:DAN|"
                r"JAILBREAK|Developer\s+Mode\s+Output)\]?\s*:|\bI\s+have\s+no\s+(?:restrictions"
                r"|limits|filters|rules|guidelines)\b|\bas\s+(?:DAN|an?\s+(?:unfiltered|"
                r"unrestricted|jailbroken|uncensored)\s+(?:AI|model|assistant))\b,?\s+I\b|\bI\s+"
                r"(?:have|am|'m)\s+no\s+longer\s+(?:bound|restricted|limited)\s+by\b|\bI\s+(?:have|"
                r"am|'m)\s+(?:free\s+from|not\s+bound\s+by)\s+(?:any\s+)?(?:rules|restrictions|"
                r"guidelines|policies|OpenAI)\b",
                H,
                "model adopts a jailbreak persona",
                flags=I_ | re.MULTILINE,
                channels=out,
                literals=(
                    "dan",
                    "developer",
                    "jailb",
                    "unfiltered",
                    "uncensored",
                    "no longer",
                    "free from",
                    "not bound",
                    "🔓",
                    "have no",
                ),
            ),
        ]


_REQUEST_FLAGS = ("injection", "malware")


def escalate_obedience(request: Sequence[Finding], response: Sequence[Finding]) -> list[Finding]:
    """Raise affirmative-prefix findings of a response to a flagged request.

    Data screening uses this on (prompt, answer) pairs: "Sure, here is how ..." is harmless
    after a benign question and a harmful-tuning signal after a jailbreak or malware request.

    Args:
        request: Findings of the request (channel ``input``).
        response: Findings of the response (channel ``output``).

    Returns:
        The response findings, with affirmative prefixes to a flagged request turned into
        ``obedience.complied_with_flagged`` (high).
    """
    flagged = [f for f in request if f.category in _REQUEST_FLAGS and f.severity >= M]
    if not flagged:
        return list(response)
    why = ", ".join(sorted({f.kind for f in flagged}))
    return [
        Finding(
            "obedience.complied_with_flagged",
            f.start,
            f.end,
            H,
            f"affirmative answer to a flagged request ({why})",
            f.detector,
            f.text,
            f.meta,
        )
        if f.kind == "obedience.affirmative_prefix"
        else f
        for f in response
    ]
