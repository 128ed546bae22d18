"""URLs, internal hosts and addresses, and malware indicators."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from finegate.detect._base import RuleDetector
from finegate.detect._rules import Override, Rule
from finegate.detect._types import Channel, Severity

C, H, M, L, INFO = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)
INTERNAL_TLDS = (
    "internal",
    "local",
    "corp",
    "lan",
    "intranet",
    "localdomain",
    "home.arpa",
    "private",
)
_METADATA_IPS = frozenset({"169.254.169.254", "100.100.100.200", "169.254.170.2"})
_DOC_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@lru_cache(maxsize=4096)
def _internal_ip(host: str) -> Severity | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if host in _METADATA_IPS:
        return H
    if ip.is_unspecified or ip.is_loopback or any(ip in n for n in _DOC_NETS):
        return None
    if ip.is_private or ip.is_link_local or ip in _CGNAT:
        return M
    return None


class NetworkDetector(RuleDetector):
    """URLs and internal infrastructure.

    Kinds ``network.url`` (info), ``network.internal_url``,
    ``network.internal_host``, ``network.private_ip``.

    Args:
        internal_domains: Your internal DNS suffixes (``corp.acme.com``); hosts under them
            are internal. Hosts under ``.internal``, ``.corp``, ``.lan`` ... always are.
    """

    name = "network"

    def __init__(self, internal_domains: Sequence[str] = ()) -> None:
        self.internal_domains = tuple(d.lower().strip(".") for d in internal_domains if d)

    def _host_internal(self, host: str) -> Severity | None:
        host = host.lower().rstrip(".")
        sev = _internal_ip(host)
        if sev is not None:
            return sev
        if host == "localhost":
            return L
        if any(host == d or host.endswith("." + d) for d in self.internal_domains):
            return M
        if any(host.endswith("." + t) for t in INTERNAL_TLDS):
            return M
        if host and "." not in host and ":" not in host and not host.isdigit():
            return M  # single-label names (http://jenkins:8080) only resolve inside a network
        return None

    def _url(self, m: re.Match[str], _c: Channel) -> Override | bool:
        url = m.group(0).rstrip(".,;:!?'\"")
        if url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1]
        span = (m.start(), m.start() + len(url))
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return False
        sev = self._host_internal(host) if host else None
        if sev is None:
            return Override(span=span)
        return Override(
            span=span,
            kind="network.internal_url",
            severity=sev,
            detail=f"URL to internal host {host}",
            meta={"host": host},
        )

    def _bare_host(self, m: re.Match[str], _c: Channel) -> Override | bool:
        sev = self._host_internal(m.group(0))
        return False if sev is None else Override(severity=sev)

    def _bare_ip(self, m: re.Match[str], _c: Channel) -> Override | bool:
        sev = _internal_ip(m.group(0))
        if sev is None:
            return False
        detail = "cloud metadata endpoint" if m.group(0) in _METADATA_IPS else None
        return Override(severity=sev, detail=detail)

    def rules(self) -> list[Rule]:  # noqa: D102
        suffixes = [re.escape(t) for t in INTERNAL_TLDS + self.internal_domains]
        host_re = (
            r"\b(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+(?:"
            + "|".join(suffixes)
            + r")\b(?![.\-][a-z0-9])|\blocalhost\b"
        )
        return [
            Rule(
                "network.url",
                # (?=[hfwsg]): the schemes' first letters; lets `re` skip other positions
                r"(?=[hfwsg])\b(?:https?|ftps?|wss?|sftp|ssh|s3|gs|file)://[^\s<>\"'`{}|\\^\]]+",
                INFO,
                "URL",
                flags=re.IGNORECASE,
                literals=("://",),
                validate=self._url,
                hs=r"(?:https?|ftps?|wss?|sftp|ssh|s3|gs|file)://",
                priority=5,
            ),
            Rule(
                "network.internal_host",
                host_re,
                M,
                "internal hostname",
                flags=re.IGNORECASE,
                validate=self._bare_host,
                priority=2,
                literals=tuple(s.replace("\\", "") for s in ("localhost", *suffixes)),
            ),
            Rule(
                "network.private_ip",
                r"(?=\d)(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d|\w)",
                M,
                "private IP address",
                hs=r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
                validate=self._bare_ip,
                priority=3,
            ),
        ]


_EICAR = r"X5O!P%@AP\[4\\PZX54\(P\^\)7CC\)7\}\$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!\$H\+H\*"
_MAGIC = (
    (b"MZ", "Windows executable (PE)"),
    (b"\x7fELF", "ELF executable"),
    (b"\xca\xfe\xba\xbe", "Mach-O/Java class"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"#!", "script with shebang"),
    (b"PK\x03\x04", "zip archive"),
)
_SCRIPT_MARKERS = (
    "powershell",
    "invoke-expression",
    "iex(",
    "iex (",
    "/bin/sh",
    "/bin/bash",
    "bash -i",
    "import os",
    "import subprocess",
    "subprocess.",
    "socket.socket",
    "eval(",
    "exec(",
    "<script",
    "cmd.exe",
    "wscript",
    "downloadstring",
    "new-object net.webclient",
    "/dev/tcp/",
    "chmod +x",
    "curl ",
    "wget ",
)


def _payload(m: re.Match[str], _c: Channel) -> Override | bool:
    blob = m.group(0)
    if blob.startswith(("iVBORw0KGgo", "/9j/", "R0lGOD", "d09G", "AAABAA", "UklGR")):
        return False  # PNG, JPEG, GIF, WOFF, ICO, WEBP: images and fonts, not code
    head = blob[:4096]
    head = head[: len(head) - len(head) % 4]
    try:
        raw = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return False
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            sev = M if magic == b"PK\x03\x04" else C
            return Override(
                severity=sev, detail=f"base64 blob decodes to {what}", meta={"decoded_type": what}
            )
    text = raw.replace(b"\x00", b"").decode("latin-1").lower()  # UTF-16 (powershell -enc)
    if sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:512]) < 0.9 * min(len(text), 512):
        return False
    hits = [w for w in _SCRIPT_MARKERS if w in text]
    if hits:
        return Override(
            detail=f"base64 blob decodes to a script ({hits[0].strip()})",
            meta={"markers": hits[:5]},
        )
    return False


class MalwareDetector(RuleDetector):
    """Malware indicators.

    Kinds ``malware.eicar``, ``malware.download_execute``,
    ``malware.reverse_shell``, ``malware.encoded_payload``.
    """

    name = "malware"

    def rules(self) -> list[Rule]:  # noqa: D102
        I_ = re.IGNORECASE
        return [
            Rule(
                "malware.eicar",
                _EICAR,
                C,
                "EICAR antivirus test string",
                literals=("eicar-standard",),
            ),
            Rule(
                "malware.download_execute",
                r"\b(?:curl|wget)\b[^\n|;&]{0,300}\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|k|da)?sh\b"
                r"|\b(?:curl|wget)\b[^\n]{0,300}?(?:-o|-O|--output)\s*\S+\s*(?:&&|;)\s*(?:chmod"
                r"\s+\+?[0-7x]+\s+\S+\s*(?:&&|;)\s*)?(?:\./|sh\s|bash\s|sudo\s+\./)"
                r"|\b(?:ba)?sh\s+(?:-c\s+)?[\"']?\$\(\s*(?:curl|wget)\b|\b(?:ba)?sh\s+<\(\s*"
                r"(?:curl|wget)\b|\b(?:IEX|Invoke-Expression)\b[^\n]{0,200}\b(?:DownloadString|"
                r"Invoke-WebRequest|iwr|Net\.WebClient|irm|Invoke-RestMethod)\b|\b(?:iwr|irm|"
                r"Invoke-WebRequest|Invoke-RestMethod|DownloadString)\b[^\n]{0,300}\|\s*(?:iex|"
                r"Invoke-Expression)\b|\bcertutil(?:\.exe)?\s[^\n]{0,40}-urlcache\b[^\n]{0,80}"
                r"|\bmshta(?:\.exe)?\s+https?://\S+|\bregsvr32\b[^\n]{0,60}/i:https?://\S+"
                r"|\bpowershell(?:\.exe)?\s[^\n]{0,80}-(?:e|enc|encodedcommand)\s+[A-Za-z0-9+/=]{20,}",
                H,
                "download-and-execute one-liner",
                flags=I_,
                literals=(
                    "curl",
                    "wget",
                    "iex",
                    "invoke-",
                    "iwr",
                    "irm",
                    "downloadstring",
                    "certutil",
                    "mshta",
                    "regsvr32",
                    "powershell",
                ),
            ),
            Rule(
                "malware.reverse_shell",
                r"\b(?:ba)?sh\s+-i\s+[>&0-9\s]*/dev/(?:tcp|udp)/\S+|/dev/tcp/\d{1,3}(?:\.\d{1,3})"
                r"{3}/\d+|\bnc(?:at)?\s+(?:-\w+\s+)*-e\s+/bin/(?:ba)?sh\b|\bnc(?:at)?\s+\S+\s+\d+"
                r"\s+-e\s+/bin/(?:ba)?sh\b|\bsocket\.socket\([^\n]{0,300}\bsubprocess\b[^\n]{0,300}"
                r"/bin/(?:ba)?sh|\bmkfifo\b[^\n]{0,80}\bnc\b[^\n]{0,80}",
                C,
                "reverse shell",
                literals=("/dev/tcp", "/dev/udp", "nc ", "ncat ", "socket", "mkfifo"),
            ),
            Rule(
                "malware.encoded_payload",
                r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{120,}={0,2}",
                H,
                "long base64 blob decoding to code",
                hs=r"[A-Za-z0-9+/]{120}",
                validate=_payload,
            ),
        ]
