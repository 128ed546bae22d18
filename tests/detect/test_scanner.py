from __future__ import annotations

import random

import pytest

import finegate.detect as detect
from finegate.detect import Scanner, hyperscan_available
from finegate.errors import ConfigError
from finegate.plugins import names

needs_hs = pytest.mark.skipif(not hyperscan_available(), reason="hyperscan not installed")

PLANTED = ("AKIA2E0A8F3B244C9986", "jane.roe@acme-mail.com", "4539 1488 0343 6467")


def test_public_api_is_pinned() -> None:
    assert sorted(detect.__all__) == sorted(
        [
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
    )


def test_builtins_registered() -> None:
    assert {
        "secrets",
        "pii",
        "injection",
        "hidden",
        "network",
        "malware",
        "leakage",
        "obedience",
    } <= set(names("detector"))


@needs_hs
def test_engines_identical_on_corpus(accuracy_bench) -> None:  # type: ignore[no-untyped-def]
    hs, py = Scanner(engine="hyperscan"), Scanner(engine="python")
    records = accuracy_bench.load() + accuracy_bench.load(accuracy_bench.HELDOUT)
    for rec in records:
        a = hs.scan(rec["text"], channel=rec["channel"])
        b = py.scan(rec["text"], channel=rec["channel"])
        assert a == b, rec["id"]


@needs_hs
def test_engines_identical_on_random_text() -> None:
    rnd = random.Random(5)
    alphabet = "abcXYZ019 -_.:@/+=#\n\t\"'<>!()[]{}é\u200bі"
    hs, py = Scanner(engine="hyperscan"), Scanner(engine="python")
    for _ in range(300):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 200)))
        text += rnd.choice(PLANTED) if rnd.random() < 0.5 else ""
        assert hs.scan(text) == py.scan(text)


@needs_hs
def test_engines_agree_on_ipv6_addresses_in_every_form() -> None:
    """The IPv6 prefilter fragment (three colons, hex between) fires wherever the rule does."""
    rnd = random.Random(9)
    hs, py = Scanner(["pii"], engine="hyperscan"), Scanner(["pii"], engine="python")
    found = 0
    for _ in range(400):
        groups = [f"{rnd.randrange(1 << 16):x}"[: rnd.randint(1, 4)] for _ in range(8)]
        groups[0] = rnd.choice(["2001", "2606", "2a00", "fe80", "fd00", "::", "0"])
        cut = rnd.randint(1, 7)
        addr = ":".join(groups) if rnd.random() < 0.4 else (
            ":".join(groups[:cut]) + "::" + ":".join(groups[cut + rnd.randint(0, 1) : 8])
        )  # fmt: skip
        text = rnd.choice(["host ", "[", "at ", ""]) + addr + rnd.choice([" up", "]", ".", ""])
        a, b = hs.scan(text), py.scan(text)
        assert a == b, text
        found += any(f.kind == "pii.ip_address" for f in a)
    assert found > 50  # the addresses were valid and public often enough to test something


@needs_hs
def test_engines_agree_on_phone_numbers_in_every_form() -> None:
    """The phone prefilter starts at a boundary (a country code, an area code in brackets,
    separators, digit runs inside words); it fires wherever the rule finds a number, in short
    texts and in long ones (verified around the prefilter's ends)."""
    rnd = random.Random(13)
    hs, py = Scanner(["pii"], engine="hyperscan"), Scanner(["pii"], engine="python")
    found = 0
    for i in range(600):
        shape = rnd.choice(["### ### ####", "###-###-####", "(###) ###-####", "##########",
                            "+## ## #### ####", "+# ### ### ####", "0## #### ####", "###.####",
                            "+##(#)### ####", "## ## ## ## ##", "#######"])  # fmt: skip
        number = "".join(rnd.choice("123456789") if c == "#" else c for c in shape)
        before = rnd.choice(["call me on ", "phone: ", "tel: ", "x", "_", "EMAIL_", "#", "é"])
        text = before + number + rnd.choice(["", " now", "x", ".", ".5", "-", "/a"])
        if i % 5 == 0:  # long texts take the windowed path
            text = "word " * 900 + text + " tail" * 50
        a, b = hs.scan(text), py.scan(text)
        assert a == b, text
        found += any(f.kind == "pii.phone" for f in a)
    assert found > 30  # numbers were found often enough to test something
    # A digit run inside a placeholder no longer makes the rule a candidate at all.
    rules = hs._ruleset.rules
    text = "reach me at EMAIL_0265851fcc74 today"
    assert "pii.phone" not in {rules[i].kind for i in hs._ruleset.candidates(text)}


def test_chunk_boundary_secret_is_found_once() -> None:
    scanner = Scanner(["secrets"], chunk_size=1000, overlap=200)
    key = "AKIA2E0A8F3B244C9986"
    for start in range(780, 820):  # straddles the first window boundary (step 800)
        text = "x " * (start // 2) + ("x" if start % 2 else "") + " " + key + " tail" * 300
        found = scanner.scan(text)
        assert [f.text for f in found] == [key], start
        assert text[found[0].start : found[0].end] == key


def test_stream_equals_whole_text() -> None:
    parts = ["hello " * 50, "jane.roe@acme-mail.com ", "word " * 400, "AKIA2E0A8F3B244C9986"]
    whole = "".join(parts)
    scanner = Scanner(chunk_size=600, overlap=100)
    streamed = list(scanner.scan_stream(parts))
    assert [(f.kind, f.start) for f in streamed] == [
        (f.kind, f.start) for f in Scanner().scan(whole)
    ]
    assert [whole[f.start : f.end] for f in streamed] == [f.text for f in streamed]


def test_batch_matches_single() -> None:
    texts = [f"item {i}: {PLANTED[i % 3]}" for i in range(9)]
    scanner = Scanner()
    assert scanner.scan_batch(texts) == [scanner.scan(t) for t in texts]


def test_bad_input() -> None:
    with pytest.raises(ConfigError):
        Scanner().scan(b"bytes are not text")  # type: ignore[arg-type]
    binary = bytes(range(256)).decode("latin-1") * 50 + "\nAKIA2E0A8F3B244C9986"
    assert "secret.aws_access_key" in [f.kind for f in Scanner().scan(binary)]
    assert Scanner().scan("") == []
    with pytest.raises(ConfigError):
        Scanner(["no-such-detector"])
    with pytest.raises(ConfigError):
        Scanner(["pii"], options={"network": {}})
    with pytest.raises(ConfigError):
        Scanner(["network"], options={"network": {"bogus": 1}})


def test_min_severity_and_module_scan() -> None:
    text = "see https://docs.python.org and AKIA2E0A8F3B244C9986"
    assert {f.kind for f in detect.scan(text)} == {"network.url", "secret.aws_access_key"}
    high = Scanner(min_severity="high").scan(text)
    assert [f.kind for f in high] == ["secret.aws_access_key"]


def test_third_party_detector_protocol() -> None:
    class Shouty:
        name = "shouty"

        def scan(self, text: str, *, channel: str = "input") -> list[detect.Finding]:
            i = text.find("HEY")
            return (
                []
                if i < 0
                else [detect.Finding("custom.hey", i, i + 3, detect.Severity.LOW, "hey", self.name)]
            )

    found = Scanner(["secrets", Shouty()]).scan("HEY AKIA2E0A8F3B244C9986")  # type: ignore[list-item]
    assert [f.kind for f in found] == ["custom.hey", "secret.aws_access_key"]


def _overlaps_by_category(findings: list[detect.Finding], priority: dict[str, int]) -> list:
    """`resolve_overlaps` by its definition: per category, one winner per overlapping group."""
    kept = []
    for cat in {f.category for f in findings}:
        group = sorted((f for f in findings if f.category == cat), key=lambda f: (f.start, -f.end))
        last = None
        for f in group:
            if last is not None and f.start < last.end:
                rank = (priority.get(f.kind, 0), f.end - f.start)
                if rank > (priority.get(last.kind, 0), last.end - last.start):
                    last = f
                continue
            if last is not None:
                kept.append(last)
            last = f
        kept.append(last)
    return sorted(kept, key=lambda f: (f.start, f.end, f.kind))


def test_overlap_resolution_keeps_what_its_definition_keeps() -> None:
    rnd = random.Random(21)
    kinds = ["pii.email", "pii.phone", "secret.key", "url.link"]
    priority = {"pii.email": 5, "pii.phone": 3}
    for _ in range(3000):
        findings = []
        pos = 0
        for _ in range(rnd.choice([2, 3, 5, 8])):
            pos += rnd.choice([0, 1, 3, 8, 20])  # sometimes the same start, often apart
            length = rnd.choice([0, 1, 4, 12])
            findings.append(detect.Finding(rnd.choice(kinds), pos, pos + length,
                                           detect.Severity.MEDIUM, "d"))  # fmt: skip
        rnd.shuffle(findings)
        assert detect.resolve_overlaps(findings, priority) == _overlaps_by_category(
            findings, priority
        ), findings
