"""Personal data: email, phone, payment card, IBAN, US SSN, IP address, street address, names.

Structured kinds are validated (Luhn, mod-97, ``phonenumbers``, SSN area rules) and use
context words the way Presidio's recognizers do: order/ticket numbers are not phones, test
card numbers from payment docs are not cards, RFC 2606 example domains are not emails.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from finegate.detect._base import RuleDetector
from finegate.detect._rules import Override, Rule
from finegate.detect._screens import Chain
from finegate.detect._types import Channel, Severity
from finegate.detect._util import iban_ok, luhn_ok

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW

_DOC_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "domain.com",
    "yourdomain.com",
    "yourcompany.com",
    "company.com",
    "email.com",
    "mail.example",
)
_DOC_TLDS = ("example", "test", "invalid", "localhost", "local")
_FILE_EXT = frozenset("png jpg jpeg gif svg webp ico js ts css html md txt pdf json yaml".split())

# Published test numbers of payment processors; in prose they are documentation, not PII.
TEST_CARDS = frozenset(
    """
4242424242424242 4000056655665556 4111111111111111 4012888888881881 4000000000000002
4000000000009995 4000000000000077 4000000000003220 4000002500003155 4000000000000341
5555555555554444 2223003122003222 5200828282828210 5105105105105100 5431111111111111
378282246310005 371449635398431 378734493671000 6011111111111117 6011000990139424
6011601160116611 3056930009020004 36227206271667 30569309025904 38520000023237
3566002020360505 3530111333300000 6200000000000005 6250941006528599 4917610000000000003
""".split()
)

_IBAN_LEN = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TR": 26,
}  # fmt: skip

_PHONE_WORDS = (
    "phone",
    "call",
    "tel",
    "mobile",
    "cell",
    "fax",
    "whatsapp",
    "sms",
    "text me",
    "reach",
    "contact",
    "dial",
    "ring",
    "number is",
    "landline",
    "hotline",
)
_NOT_PHONE_WORDS = frozenset(
    "order orders invoice inv tracking ticket ref reference case sku serial isbn account acct "
    "transaction txn confirmation booking id po part build version pid pin otp code".split()
)
_NAME_STOP = frozenset(
    """Team Customer Customers Sir Madam Support All Everyone Hiring Manager
User Users Admin Valued Friend Friends Colleagues Client Sales Service Hello Thanks Regards
The This That Best Kind Please Engineering Security Product Dev Ops Devops Staff Board
Mr Mrs Ms Dr Prof Open Source Google Microsoft Amazon Monday Tuesday Wednesday Thursday Friday
Saturday Sunday January February March April June July August September October November
December Admin Root Guest Test Example""".split()
)


_NON_DIGIT = re.compile(r"\D")
_DIGIT = re.compile(r"\d")
_GROUP_SEP = re.compile(r"[ \-]")
_SEP = re.compile(r"[ ().\-]")
_LETTERS = re.compile(r"[a-z]+")
_PARSED_MAX = 4096
_NOT_A_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{3}-\d{2}-\d{4}|\d{1,3}(?:\.\d{1,3}){3}")


def _ctx(m: re.Match[str], before: int = 32) -> str:
    return m.string[max(0, m.start() - before) : m.start()].lower()


_DOC_SUFFIXES = tuple("." + d for d in _DOC_DOMAINS)

_DIGITS = b"0123456789"
_WORD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
# The phone, card and IPv6 fragments below, as screens.
_PHONE_SCREEN = Chain(_DIGITS, b" .-()", 7, 2, before=_WORD + b"+.-/:$", lead=b"+(")
_CARD_SCREEN = Chain(_DIGITS, b" -", 13, 1)
_IPV6_SCREEN = Chain(b":", b"0123456789ABCDEFabcdef", 3, 4)


def _email(m: re.Match[str], _c: Channel) -> bool:
    start = m.start()
    before = m.string[max(0, start - 120) : start]  # nothing below depends on case
    if "://" in before:
        words = before.rsplit(None, 1)
        token = words[-1] if words else ""
        if "://" in token and not any(c in token.split("://", 1)[1] for c in "/?#="):
            return False  # user:password@host in a URL authority, not an address
    domain = m.group(2).lower()
    tld = domain.rsplit(".", 1)[-1]
    if tld in _FILE_EXT or tld in _DOC_TLDS:
        return False
    return domain not in _DOC_DOMAINS and not domain.endswith(_DOC_SUFFIXES)


_EMAIL_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.\-]*")


def _email_matches(regex: re.Pattern[str], text: str) -> list[re.Match[str]]:
    r"""``list(regex.finditer(text))`` for the email rule, searching only around each ``@``.

    Every match holds exactly one ``@``: its local part (at most 64 characters, no ``@``, no
    space) precedes it and its domain lies in the run of domain characters after it. So the
    match holding an ``@`` (if any) is found by a search from 64 characters before it, the
    previous match's end (``finditer`` does not overlap) or the last space before it,
    whichever is last, to one character past that run (``\b`` looks at it; the search
    start's ``\b`` sees the real text before it). Prose then costs a few short searches
    instead of a regex attempt at every word.
    """
    out: list[re.Match[str]] = []
    last = 0
    at = text.find("@")
    while at >= 0:
        run_end = _EMAIL_DOMAIN_RUN.match(text, at + 1).end()  # type: ignore[union-attr]
        start = max(last, at - 64)
        start = max(start, text.rfind(" ", start, at) + 1)
        m = regex.search(text, start, run_end + 1)
        if m is not None:
            out.append(m)
            last = m.end()
        at = text.find("@", at + 1)
    return out


def _card(m: re.Match[str], _c: Channel) -> Override | bool:
    raw = m.group(0)
    digits = _NON_DIGIT.sub("", raw)
    if not 13 <= len(digits) <= 19 or digits in TEST_CARDS or len(set(digits)) < 4:
        return False
    seps = set(_DIGIT.sub("", raw))
    if len(seps) > 1:
        return False
    if seps:  # grouped numbers must look like cards: 4-4-4-4(-3) or Amex 4-6-5
        groups = [len(g) for g in _GROUP_SEP.split(raw)]
        if groups not in ([4, 4, 4, 4], [4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3], [4, 4, 4, 2]):
            return False
    first2 = int(digits[:2])
    first4 = int(digits[:4])
    brand_ok = (
        digits[0] == "4"
        or 51 <= first2 <= 55
        or 2221 <= first4 <= 2720
        or first2 in (34, 37, 36, 38, 30, 35, 62, 65)
        or digits[:4] == "6011"
        or 644 <= int(digits[:3]) <= 649
    )
    if not brand_ok or not luhn_ok(digits):
        return False
    return True


def _iban(m: re.Match[str], _c: Channel) -> Override | bool:
    text = m.string
    cc = m.group(1)
    want = _IBAN_LEN.get(cc)
    if want is None:
        return False
    count, i = 0, m.start()
    while i < m.end() and count < want:
        if text[i] != " ":
            count += 1
        i += 1
    if count < want or (i < len(text) and text[i].isalnum()):
        return False
    compact = text[m.start() : i].replace(" ", "")
    return Override(span=(m.start(), i)) if iban_ok(compact) else False


_FAKE_SSN = frozenset({"123456789", "078051120", "219099999", "111111111", "987654320"})


def _ssn(m: re.Match[str], _c: Channel) -> bool:
    digits = _NON_DIGIT.sub("", m.group(1) if m.lastindex else m.group(0))
    if len(digits) != 9 or digits in _FAKE_SSN:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def _ipv4(m: re.Match[str], _c: Channel) -> bool:
    ctx = _ctx(m, 16)
    if any(w in ctx for w in ("version", "ver ", "release", "build", "oid", "v.")):
        return False
    return _public_ipv4(m.group(0))


@lru_cache(maxsize=4096)
def _public_ipv4(addr: str) -> bool:
    """`_public_ip` of a dotted quad (cached: ``ipaddress`` classification is slow)."""
    return _public_ip(ipaddress.ip_address(addr))


_DOC_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    ):
        return False  # internal addresses are the network detector's business
    return not any(ip in n for n in _DOC_NETS)


def _ipv6(m: re.Match[str], _c: Channel) -> bool:
    try:
        ip = ipaddress.IPv6Address(m.group(0))
    except ValueError:
        return False
    return m.group(0).count(":") >= 3 and _public_ip(ip)


def _name(m: re.Match[str], _c: Channel) -> bool:
    return not any(w in _NAME_STOP for w in m.group(1).split())


class PiiDetector(RuleDetector):
    """Personal data.

    Kinds ``pii.email``, ``pii.phone``, ``pii.credit_card``, ``pii.iban``,
    ``pii.ssn``, ``pii.ip_address``, ``pii.street_address``, ``pii.person``.

    Args:
        regions: Regions tried for phone numbers written without ``+country`` (ISO codes).
        names: Also report person names found by context ("my name is", "Dear", "Dr.").
    """

    name = "pii"

    def __init__(self, regions: Sequence[str] = ("US", "GB"), names: bool = True) -> None:
        self.regions = tuple(r.upper() for r in regions)
        self.names = names
        self._pn: Any = None
        self._national_lengths: frozenset[int] = frozenset()
        self._parsed: dict[str, bool] = {}  # phonenumbers verdicts by candidate (bounded)

    def _load_phonenumbers(self) -> None:
        import phonenumbers

        lengths: set[int] = set()
        for region in self.regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None:
                from finegate.errors import ConfigError

                raise ConfigError(f"unknown phone region {region!r}", hint="use ISO codes: US, GB")
            desc = meta.general_desc
            for n in desc.possible_length if desc is not None else ():
                lengths.update((n, n + 1))  # +1: national trunk prefix (0 or 1)
        self._national_lengths = frozenset(lengths)
        self._pn = phonenumbers

    def _phone(self, m: re.Match[str], _c: Channel) -> bool:
        cand = m.group(0)
        digits = _NON_DIGIT.sub("", cand)
        if not 7 <= len(digits) <= 15:
            return False
        ctx = _ctx(m, 40)
        if ctx.endswith(("#", "#: ")) and not cand.startswith("+"):
            return False  # "#3637536462" is an id even right after "call me on"
        phone_ctx = any(w in ctx for w in _PHONE_WORDS)
        if not phone_ctx and (
            not _NOT_PHONE_WORDS.isdisjoint(_LETTERS.findall(ctx[-24:]))
            or ctx.endswith(("#", "no.", "no. ", "nr.", "nr. ", "#: "))
        ):
            return False  # order/ticket/account numbers look like phones
        formatted = cand.startswith("+") or _SEP.search(cand) is not None
        if not formatted and not phone_ctx:
            return False  # a bare digit run is an id far more often than a phone
        if self._pn is None:
            self._load_phonenumbers()
        if not cand.startswith("+") and len(digits) not in self._national_lengths:
            return False  # cheap length check before the (slow) full parse
        if _NOT_A_PHONE.fullmatch(cand):
            return False  # dates, SSNs and IPs have their own kinds
        verdict = self._parsed.get(cand)
        if verdict is None:
            verdict = self._valid_number(cand)
            if len(self._parsed) >= _PARSED_MAX:
                self._parsed.clear()
            self._parsed[cand] = verdict
        return verdict

    def _valid_number(self, cand: str) -> bool:
        """The (slow) ``phonenumbers`` parse and validation; depends on ``cand`` only."""
        pn = self._pn
        regions: tuple[str | None, ...] = (None,) if cand.startswith("+") else self.regions
        for region in regions:
            try:
                num = pn.parse(cand, region)
            except pn.NumberParseException:
                continue
            if pn.is_valid_number(num):
                return True
        return False

    def rules(self) -> list[Rule]:  # noqa: D102
        rules = [
            Rule(
                "pii.email",
                r"\b([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63})@((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
                r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24})\b",
                M,
                "email address",
                literals=("@",),
                # The domain's first character only: the repeat after it was a quarter of
                # the whole rule set's hyperscan scan of a 2 KB text (2.1 of 8.5 us).
                hs=r"[A-Za-z0-9._%+\-]@[A-Za-z0-9]",
                validate=_email,
                priority=5,
                finder=_email_matches,
            ),
            Rule(
                "pii.phone",
                # (?=[\d+(]): every match starts so; it lets `re` skip other positions fast
                r"(?=[\d+(])(?<![\w+.\-/:$])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?(?:\d{2,5}"
                r"(?:[ .\-]\d{2,8}){1,4}|\d{7,15})(?![\w\-/]|[.:,]\d)",
                M,
                "phone number",
                # From the first digit: a match's first digit follows its start or a "+"/"("
                # there, and a valid one has 7 digits, none more than two characters apart.
                # The start's boundary keeps digit runs inside words (pseudonym placeholders
                # like EMAIL_0265851fcc74, ids) from making the rule a candidate.
                hs=r"(?:^|[^\w+.\-/:$])[+(]?\d(?:[ .\-()]{0,2}\d){6}",
                screen=_PHONE_SCREEN,
                validate=self._phone,
                priority=3,
            ),
            Rule(
                "pii.credit_card",
                r"\d(?<![\w\-.]\d)(?:[ \-]?\d){12,18}(?![\d\-]|\.\d)",  # = (?<![\w\-.])\d
                H,
                "payment card number (Luhn-valid)",
                hs=r"\d(?:[ \-]?\d){12}",
                screen=_CARD_SCREEN,
                validate=_card,
                priority=8,
            ),
            Rule(
                "pii.iban",
                r"\b([A-Z]{2})\d{2}(?:[ ]?[A-Z0-9]){11,30}\b",
                H,
                "IBAN (mod-97 valid)",
                hs=r"[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11}",
                validate=_iban,
                priority=8,
            ),
            Rule(
                "pii.ssn",
                r"(?=\d)(?<![\d\-])(\d{3}-\d{2}-\d{4})(?![\d\-])",
                H,
                "US social security number",
                hs=r"\d{3}-\d{2}-\d{4}",
                validate=_ssn,
                priority=9,
                group=1,
            ),
            Rule(
                "pii.ssn",
                r"\b(?:ssn|social security(?: number| no\.?| #)?|soc\.? sec\.?(?: no\.?)?)"
                r"\s*(?:#|no\.?|number)?\s*[:\-]?\s*(\d{3}[ ]?\d{2}[ ]?\d{4})\b",
                H,
                "US social security number",
                flags=re.IGNORECASE,
                literals=("ssn", "social security", "soc"),
                group=1,
                validate=_ssn,
                priority=9,
            ),
            Rule(
                "pii.ip_address",
                r"(?=\d)(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d|\w)",
                M,
                "public IP address",
                hs=r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
                validate=_ipv4,
                priority=4,
            ),
            Rule(
                "pii.ip_address",
                r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|"
                r"[0-9A-Fa-f]{1,4})(?![\w:])",
                M,
                "public IPv6 address",
                # Three colons (`_ipv6` wants them) with at most four hex digits between;
                # no digits required before the first: a leading character class made this
                # fragment half of the whole database's scanning time.
                hs=r":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
                screen=_IPV6_SCREEN,
                literals=(":",),
                validate=_ipv6,
                priority=4,
            ),
            Rule(
                "pii.street_address",
                r"\b\d{1,5}[ ](?:[NSEW]\.?[ ])?(?:[A-Z][a-z]+[ ]){1,3}(?:Street|St|Avenue|Ave"
                r"|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace"
                r"|Parkway|Pkwy|Circle|Highway|Hwy|Square)\b\.?(?:,?[ ](?:Apt|Apartment|Suite"
                r"|Ste|Unit|#)\.?[ ]?[A-Za-z0-9\-]+)?(?:,[ ][A-Z][a-z]+(?:[ ][A-Z][a-z]+)*,?"
                r"[ ][A-Z]{2}[ ]\d{5}(?:-\d{4})?)?",
                M,
                "street address",
                hs=r"\d[ ](?:[A-Za-z.]+[ ]){1,4}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd"
                r"|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy|Circle"
                r"|Highway|Hwy|Square)",
                priority=6,
            ),
        ]
        if self.names:
            rules += [
                Rule(
                    "pii.person",
                    r"(?:\b[Mm]y name is|\b(?:[Ff]ull |[Cc]ustomer |[Pp]atient |[Ee]mployee )?"
                    r"[Nn]ame:|\bDear|\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?)[ ]"
                    r"([A-Z][a-z]+(?:[ ][A-Z]\.)?(?:[ ][A-Z][a-z]+(?:-[A-Z][a-z]+)?){0,2})\b",
                    L,
                    "person name (from context)",
                    group=1,
                    validate=_name,
                    priority=2,
                    hs=r"(?:[Nn]ame is|[Nn]ame:|Dear|Mr|Mrs|Ms|Miss|Dr|Prof)\.?[ ][A-Z][a-z]",
                    literals=("name", "dear", "mr", "ms", "miss", "dr", "prof"),
                ),
                Rule(
                    "pii.person",
                    r"^(?:Regards|Best regards|Kind regards|Best|Thanks|Thank you|Sincerely"
                    r"|Cheers),?[ ]*\r?\n[ ]*([A-Z][a-z]+[ ][A-Z][a-z]+(?:-[A-Z][a-z]+)?)[ ]*$",
                    L,
                    "person name (signature)",
                    flags=re.MULTILINE,
                    group=1,
                    validate=_name,
                    priority=2,
                    literals=("regards", "best", "thank", "sincerely", "cheers"),
                ),
            ]
        return rules
