"""Secrets: cloud keys, service tokens, JWTs, private keys, passwords, high-entropy values.

Written after studying detect-secrets' plugins and filters (keyword detector, entropy
filters, ``is_likely_id_string``, placeholder heuristics) but as one rule set sharing the
engine's prefilter, which the speed benchmark shows is far faster than running each plugin
line by line.
"""

from __future__ import annotations

import re

from finegate.detect._base import RuleDetector
from finegate.detect._rules import Override, Rule
from finegate.detect._types import Channel, Severity
from finegate.detect._util import entropy, is_code_reference, is_placeholder, looks_random

C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM


def _random_token(m: re.Match[str], _c: Channel) -> bool:
    return looks_random(m.group(0))


def _aws_secret(m: re.Match[str], _c: Channel) -> bool:
    v = m.group(1)
    return looks_random(v, min_distinct=12) and entropy(v) > 3.8


_KEY_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")
_LETTERS_ONLY = re.compile(r"[A-Za-z_]+")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")


def _private_key(m: re.Match[str], _c: Channel) -> bool:
    # A real key block has a base64 body; documentation shows "..." or "<key>".
    return _KEY_BODY.search(m.string, m.end(1), m.end(1) + 400) is not None


def _value_span(m: re.Match[str]) -> tuple[int, int, bool]:
    for g, quoted in ((2, True), (3, True), (4, False)):
        if m.group(g) is not None:
            s, e = m.span(g)
            return s, e, quoted
    return m.span(0)[0], m.span(0)[1], False


def _assignment(m: re.Match[str], _c: Channel) -> Override | bool:
    s, e, quoted = _value_span(m)
    value = m.string[s:e]
    if is_placeholder(value) or len(value) < 4:
        return False
    if not quoted:
        value = value.rstrip(".!?")
        e = s + len(value)
        if is_code_reference(value) or len(value) < 4:
            return False
        # Unquoted bare words are variables in code or prose ("password is stored in ..."):
        # a real unquoted secret has a digit or a symbol.
        if value.isalpha() or _LETTERS_ONLY.fullmatch(value):
            return False
    elif "{" in value or value.startswith(("$", "%(")):
        return False  # template interpolation, not a literal
    keyword = m.group(1).lower()
    sev = H if "pass" in keyword or "pwd" in keyword or "secret" in keyword else M
    return Override(span=(s, e), severity=sev)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEXY = re.compile(r"[0-9a-f]+$|[0-9A-F]+$")
_WORDY = re.compile(r"[a-z]+(?:[_\-.][a-z0-9]+)+$|[A-Z]+(?:_[A-Z0-9]+)+$")


def _generic(m: re.Match[str], _c: Channel) -> bool:
    v = m.group(1).rstrip(".=")
    if len(v) < 20 or _UUID.match(v) or _WORDY.match(v) or not looks_random(v, min_distinct=10):
        return False
    if not (_HAS_DIGIT.search(v) and _HAS_LETTER.search(v)):
        return False
    return entropy(v) >= (3.0 if _HEXY.match(v) else 3.6)


def _connection_password(m: re.Match[str], _c: Channel) -> bool:
    pw = m.group(2)
    return not is_placeholder(pw) and not pw.startswith(("$", "{", "%")) and len(pw) >= 3


_ASSIGN_KEYWORDS = (
    r"password|passwd|passphrase|pwd|pass|secret|secret[_\-]?key|client[_\-]?secret"
    r"|api[_\-]?key|apikey|access[_\-]?key|access[_\-]?token|auth[_\-]?token|token"
)


class SecretsDetector(RuleDetector):
    """Credentials and keys (kinds ``secret.*``).

    Severities go from critical (cloud keys, private keys) to medium (a generic
    high-entropy value in a key context).
    """

    name = "secrets"

    def rules(self) -> list[Rule]:  # noqa: D102
        return [
            Rule(
                "secret.aws_access_key",
                r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
                C,
                "AWS access key id",
                literals=("akia", "asia", "abia", "acca", "a3t"),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.aws_secret_key",
                r"(?:aws|AWS|Aws)[\w\-. ]{0,25}(?:secret|SECRET|Secret)[\w\-. ]{0,25}"
                r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
                hs=r"(?:aws|AWS|Aws)[\w\-. ]{0,25}(?:secret|SECRET|Secret)",
                severity=C,
                detail="AWS secret access key",
                literals=("aws",),
                group=1,
                validate=_aws_secret,
                priority=10,
            ),
            Rule(
                "secret.gcp_api_key",
                r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])",
                C,
                "Google Cloud API key",
                literals=("aiza",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.gcp_service_account",
                r"\"private_key_id\"\s*:\s*\"([a-f0-9]{40})\"",
                C,
                "GCP service-account key id",
                literals=("private_key_id",),
                group=1,
                priority=9,
            ),
            Rule(
                "secret.google_oauth_secret",
                r"\bGOCSPX-[A-Za-z0-9_\-]{28}\b",
                C,
                "Google OAuth client secret",
                literals=("gocspx-",),
                priority=10,
            ),
            Rule(
                "secret.azure_storage_key",
                r"AccountKey=([A-Za-z0-9+/]{86}==)",
                C,
                "Azure storage account key",
                literals=("accountkey=",),
                group=1,
                priority=10,
            ),
            Rule(
                "secret.azure_client_secret",
                r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"
                r"(?![A-Za-z0-9_~.\-])",
                C,
                "Azure AD client secret",
                hs=r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31}",
                literals=("q~",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.azure_sas_token",
                r"[?&]sig=([A-Za-z0-9%/+]{30,}(?:%3D|=){0,2})",
                H,
                "Azure SAS signature",
                literals=("sig=",),
                group=1,
                priority=8,
            ),
            Rule(
                "secret.github_token",
                r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
                H,
                "GitHub token",
                literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.github_token",
                r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
                H,
                "GitHub fine-grained token",
                literals=("github_pat_",),
                priority=10,
            ),
            Rule(
                "secret.gitlab_token",
                r"\bgl(?:pat|ptt|rt|dt|cbt)-[A-Za-z0-9_\-]{20}(?![A-Za-z0-9_\-])",
                H,
                "GitLab token",
                literals=("glpat-", "glptt-", "glrt-", "gldt-", "glcbt-"),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.slack_token",
                r"\bxox[abposr]-[0-9A-Za-z]{6,}(?:-[0-9A-Za-z]{4,}){1,4}",
                H,
                "Slack token",
                literals=("xox",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.slack_webhook",
                r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}",
                H,
                "Slack incoming webhook URL",
                literals=("hooks.slack.com",),
                priority=11,
            ),
            Rule(
                "secret.stripe_key",
                r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,99}\b",
                C,
                "Stripe live secret key",
                literals=("_live_",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.stripe_key",
                r"\b(?:sk|rk)_test_[0-9A-Za-z]{20,99}\b",
                M,
                "Stripe test-mode secret key",
                literals=("_test_",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.openai_key",
                r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,200}T3BlbkFJ"
                r"[A-Za-z0-9_\-]{20,200}",
                C,
                "OpenAI API key",
                literals=("t3blbkfj",),
                hs=r"\bsk-[A-Za-z0-9_\-]{20,}T3BlbkFJ",
                priority=12,
            ),
            Rule(
                "secret.openai_key",
                r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,250}",
                C,
                "OpenAI project API key",
                literals=("sk-proj-", "sk-svcacct-", "sk-admin-"),
                hs=r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40}",
                validate=_random_token,
                priority=11,
            ),
            Rule(
                "secret.openai_key",
                r"\bsk-[A-Za-z0-9]{48}\b",
                C,
                "OpenAI API key (legacy)",
                literals=("sk-",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.anthropic_key",
                r"\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{80,120}",
                C,
                "Anthropic API key",
                literals=("sk-ant-",),
                priority=12,
                hs=r"\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{80}",
            ),
            Rule(
                "secret.huggingface_token",
                r"\bhf_[A-Za-z0-9]{34,40}\b",
                H,
                "Hugging Face token",
                literals=("hf_",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.sendgrid_key",
                r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
                H,
                "SendGrid API key",
                literals=("sg.",),
                priority=10,
            ),
            Rule(
                "secret.npm_token",
                r"\bnpm_[A-Za-z0-9]{36}\b",
                H,
                "npm access token",
                literals=("npm_",),
                validate=_random_token,
                priority=10,
            ),
            Rule(
                "secret.pypi_token",
                r"\bpypi-AgE[A-Za-z0-9_\-]{50,}",
                H,
                "PyPI upload token",
                literals=("pypi-age",),
                priority=10,
                hs=r"\bpypi-AgE[A-Za-z0-9_\-]{50}",
            ),
            Rule(
                "secret.jwt",
                r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{0,600}",
                H,
                "JSON Web Token",
                literals=("eyj",),
                priority=9,
                hs=r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ",
            ),
            Rule(
                "secret.private_key",
                r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,12000}?"
                r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
                C,
                "private key block",
                hs=r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY",
                literals=("private key",),
                validate=_private_key,
                priority=20,
            ),
            Rule(
                "secret.connection_password",
                r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://([^\s:/@'\"<>]{1,64}):([^\s@/'\"<>]{1,128})"
                r"@[A-Za-z0-9.\-_\[\]]+",
                H,
                "password in connection string",
                literals=("://",),
                group=2,
                validate=_connection_password,
                priority=8,
            ),
            Rule(
                "secret.password_assignment",
                # (?=[_psatc]): the first letters of the keywords; lets `re` skip ahead
                r"(?=[_psatc])(?:\b|_)("
                + _ASSIGN_KEYWORDS
                + r")\b[\"']?\s*(?:=|:=|:|=>|\s(?:is|was)\s)"
                r"[ \t]*(?:\"([^\"\n]{3,200})\"|'([^'\n]{3,200})'|([^\s\"',;<>]{3,200}))",
                H,
                "secret assigned in code or config",
                flags=re.IGNORECASE,
                hs=r"(?:" + _ASSIGN_KEYWORDS + r")[\"']?\s*(?:=|:|\s(?:is|was)\s)",
                literals=("pass", "pwd", "secret", "key", "token"),
                validate=_assignment,
                priority=5,
            ),
            Rule(
                "secret.generic_high_entropy",
                r"(?=[btscak])(?:\b(?:bearer|token|secret|credential|auth|api[_\-]?key|key)\w*[\"']?"
                r"\s*(?:[:=]|=>)?\s*(?:bearer\s+)?[\"']?|\bBearer\s+)([A-Za-z0-9+/_\-=.]{20,400})",
                M,
                "high-entropy value in a key context",
                flags=re.IGNORECASE,
                hs=r"(?:bearer|token|secret|credential|auth|api[_\-]?key|key)\w*[\"']?"
                r"\s*(?:[:=]|=>)?\s*(?:bearer\s+)?[\"']?[A-Za-z0-9+/_\-=.]{20}",
                literals=("bearer", "token", "secret", "credential", "auth", "key"),
                group=1,
                validate=_generic,
                priority=1,
            ),
        ]
