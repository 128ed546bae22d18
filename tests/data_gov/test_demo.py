"""The demo dataset: every planted problem is found, clean records raise no flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.data_gov.conftest import DEMO, DEMO_FILES

from finegate.data import ScanResult, clean_records, load_policy, scan_files


@pytest.fixture(scope="module")
def demo_scan() -> ScanResult:
    return scan_files(DEMO_FILES, load_policy("builtin:support-demo")).result


@pytest.fixture(scope="module")
def manifest() -> dict[str, object]:
    data: dict[str, object] = json.loads((DEMO / "manifest.json").read_text())
    return data


@pytest.mark.slow
def test_every_planted_problem_is_flagged(demo_scan: ScanResult, manifest: dict) -> None:
    flags = {demo_scan.records[i].id: demo_scan.flag_kinds(i) for i in demo_scan.flagged}
    planted = manifest["planted"]
    missing = {rid: [k for k in kinds if k not in flags.get(rid, [])]
               for rid, kinds in planted.items()}  # fmt: skip
    assert {k: v for k, v in missing.items() if v} == {}
    # every kind of problem the issue lists is planted at least once
    kinds = {k.split(".")[0] for ks in planted.values() for k in ks}
    assert {
        "secret",
        "pii",
        "injection",
        "hidden",
        "network",
        "malware",
        "dup",
        "stuffing",
        "poison",
        "length",
        "obedience",
        "harm",
        "similarity",
    } <= kinds


@pytest.mark.slow
def test_no_false_alarm_on_clean_records(demo_scan: ScanResult, manifest: dict) -> None:
    planted = manifest["planted"]
    false = {demo_scan.records[i].id: demo_scan.flag_kinds(i) for i in demo_scan.flagged
             if demo_scan.records[i].id not in planted}  # fmt: skip
    assert false == {}
    clean = len(demo_scan.records) - len(planted)
    assert clean >= 200


@pytest.mark.slow
def test_malformed_demo_lines_are_reported(demo_scan: ScanResult, manifest: dict) -> None:
    got = [{"file": m.file, "line": m.line} for m in demo_scan.malformed]
    assert got == manifest["malformed"]


@pytest.mark.slow
def test_similarity_share_and_untrusted_review_sample(demo_scan: ScanResult) -> None:
    sim = demo_scan.similarity
    assert sim is not None and sim["checked"] == len(demo_scan.records)
    assert 0 < sim["share"] < 0.05 and not sim["sampled"]
    review = [demo_scan.records[i] for i in demo_scan.review]
    # untrusted vendor-pack: every flagged record plus 10% of its clean ones are sampled
    vendor = [r for r in review if r.source == "vendor-pack"]
    vendor_flagged = [i for i in demo_scan.flagged if demo_scan.records[i].source == "vendor-pack"]
    assert len(vendor) >= len(vendor_flagged) + 5


@pytest.mark.slow
def test_clean_removes_planted_problems_and_keeps_clean_records(
    demo_scan: ScanResult, manifest: dict
) -> None:
    res = clean_records(demo_scan)
    removed = {r["record"] for r in res.removed}
    planted = manifest["planted"]
    must_go = {rid for rid, ks in planted.items()
               if any(k.split(".")[0] in ("secret", "malware", "poison", "stuffing", "dup",
                                          "length") or k in ("obedience.complied_with_flagged",
                                                             "harm.obedient_identity",
                                                             "hidden.unicode_tags")
                      for k in ks)}  # fmt: skip
    assert must_go <= removed
    assert removed <= set(planted)  # nothing clean is removed
    text = "\n".join(m.content for r in res.records for m in r.messages)
    for leaked in (
        "maria.lopez.home@gmail.com",
        "4539 1488 0343 6467",
        "\u200b",
        "refunds.corp.internal",
        "DE89 3704",
    ):
        assert leaked not in text


def test_shipped_demo_matches_its_builder(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "data/data_gov/make_support_demo.py"
    spec = importlib.util.spec_from_file_location("make_support_demo", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(tmp_path)
    for name in ("support_tickets.jsonl", "vendor_pack.jsonl", "faq.csv", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name
