"""Versions and lineage in the store (SQLite and PostgreSQL), audited and permission-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.data_gov.conftest import chat, make_policy, write_jsonl

from finegate.data import clean_scan, get_version, lineage, list_versions, read_records, scan_files
from finegate.errors import NotFoundError, PermissionDeniedError
from finegate.store import Store


def _files(tmp_path: Path) -> list[Path]:
    a = write_jsonl(tmp_path / "in_tickets.jsonl", [
        chat("my mail is jane.roe@acme-mail.com", "noted"),
        chat("key AKIA2E0A8F3B244C9986", "thanks"),
        "{broken",
        chat("where is my parcel", "it ships tomorrow"),
    ])  # fmt: skip
    b = write_jsonl(tmp_path / "vendor_x.jsonl", [{"prompt": "hi", "completion": "hello"}])
    return [a, b]


def test_scan_and_clean_versions_with_lineage(store: Store, tmp_path: Path) -> None:
    from finegate.governance import list_events, verify_chain

    pol = make_policy()
    scan = scan_files(_files(tmp_path), pol, store=store, name="tickets")
    assert scan.version is not None and scan.scan_id is not None
    v0 = scan.version
    assert v0.kind == "scan" and v0.record_count == 4 and v0.parent_id is None
    assert v0.id == v0.artifact_sha256 and store.artifacts.verify(v0.id)
    assert v0.approver == "lead, steward"
    assert {s["name"]: s["trust"] for s in v0.sources} == {
        "internal": "trusted",
        "vendor": "untrusted",
    }
    assert v0.transformation["policy_hash"] == pol.hash()
    cleaned = clean_scan(scan.result, store=store, parent=v0)
    v1 = cleaned.version
    assert v1 is not None and v1.parent_id == v0.id and v1.record_count == 3
    chain = lineage(store, v1.id[:10])
    assert [c["id"] for c in chain] == [v0.id, v1.id]
    assert chain[0]["scans"][0]["malformed"] == 1
    assert chain[1]["removed"] == [
        {
            "record": "in_tickets.jsonl:2",
            "rule": "remove_kinds:secret.*",
            "kinds": ["secret.aws_access_key"],
        }
    ]
    assert chain[1]["changed"][0]["record"] == "in_tickets.jsonl:1"
    recs = read_records(store, v1.id)
    assert [r.id for r in recs] == ["in_tickets.jsonl:1", "in_tickets.jsonl:4", "vendor_x.jsonl:1"]
    assert "jane.roe" not in recs[0].messages[0].content
    assert [v.id for v in list_versions(store, name="tickets")] == [v0.id, v1.id]
    actions = [e.action for e in list_events(store)]
    assert actions.count("data.scan") == 2 and actions.count("data.clean") == 1
    assert verify_chain(store).ok
    # same content again: same version, no new row
    again = scan_files(_files(tmp_path), pol, store=store, name="tickets")
    assert again.version is not None and again.version.id == v0.id
    assert len(list_versions(store)) == 2
    assert len(lineage(store, v0.id)[0]["scans"]) == 2


def test_unknown_version_and_permissions(store: Store, tmp_path: Path) -> None:
    from finegate.governance import Principal

    with pytest.raises(NotFoundError):
        get_version(store, "abcdef123456")
    viewer = Principal(id="v1", name="viewer-bob", role="viewer")
    with pytest.raises(PermissionDeniedError):
        scan_files(_files(tmp_path), make_policy(), store=store, actor=viewer)
    assert list_versions(store) == []
