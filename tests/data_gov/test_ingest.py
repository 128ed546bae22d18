from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.data_gov.conftest import chat, write_jsonl

from finegate.data import read_files, write_quarantine
from finegate.errors import ConfigError


def test_chat_and_prompt_completion_jsonl_keep_file_and_line(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "in.jsonl", [
        chat("hi", "hello"),
        "",
        {"prompt": "q?", "completion": "a.", "system": "be brief", "tag": 7},
    ])  # fmt: skip
    ing = read_files([p], source_of=lambda n: "src")
    assert [r.id for r in ing.records] == ["in.jsonl:1", "in.jsonl:3"]
    second = ing.records[1]
    assert [m.role for m in second.messages] == ["system", "user", "assistant"]
    assert second.meta == {"tag": 7} and second.source == "src" and second.line == 3
    assert ing.files[0]["records"] == 2 and ing.files[0]["malformed"] == 0


def test_malformed_lines_are_reported_and_quarantined_rest_processed(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_bytes(
        json.dumps(chat("a", "b")).encode() + b"\n"
        + b'{"messages": [\n'
        + json.dumps({"messages": [{"role": "user", "content": "only a question"}]}).encode()
        + b"\n" + b"\xff\xfe bad bytes\n"
        + json.dumps({"messages": [{"role": "wizard", "content": "x"},
                                   {"role": "assistant", "content": "y"}]}).encode() + b"\n"
        + json.dumps(chat("c", "  ")).encode() + b"\n"
        + json.dumps(chat("d", "e")).encode() + b"\n"
    )  # fmt: skip
    ing = read_files([p])
    assert [r.id for r in ing.records] == ["in.jsonl:1", "in.jsonl:7"]
    got = [(m.line, m.reason.split(":")[0].split(" (")[0]) for m in ing.malformed]
    assert got == [
        (2, "invalid JSON"),
        (3, "no assistant message"),
        (4, "not valid UTF-8"),
        (5, "message 0 has unknown role 'wizard'"),
        (6, "message 1 content is empty"),
    ]
    q = write_quarantine(ing.malformed, tmp_path / "q" / "quarantine.jsonl")
    rows = [json.loads(x) for x in q.read_text().splitlines()]
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0]["raw"] == '{"messages": [' and rows[0]["file"] == "in.jsonl"


def test_csv_rows_and_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "faq.csv"
    p.write_text('prompt,completion\nq1,a1\n"multi\nline q",a2\nonly-one-field\nq4,a4\n')
    ing = read_files([p])
    assert [(r.id, r.messages[0].content) for r in ing.records] == [
        ("faq.csv:2", "q1"),
        ("faq.csv:3", "multi\nline q"),
        ("faq.csv:6", "q4"),
    ]
    assert [(m.line, m.reason) for m in ing.malformed] == [(5, "fewer fields than the header")]


def test_parquet_chat_and_prompt_completion(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t = pa.table({"prompt": ["p1", "p2", None], "completion": ["c1", "c2", "c3"]})
    pq.write_table(t, tmp_path / "a.parquet")
    t2 = pa.table(
        {"messages": [[{"role": "user", "content": "u"}, {"role": "assistant", "content": "v"}]]}
    )
    pq.write_table(t2, tmp_path / "b.parquet")
    ing = read_files([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert [r.id for r in ing.records] == ["a.parquet:1", "a.parquet:2", "b.parquet:1"]
    assert [(m.file, m.line) for m in ing.malformed] == [("a.parquet", 3)]


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="format"):
        read_files([tmp_path / "x.txt"])
    with pytest.raises(ConfigError, match="no such file"):
        read_files([tmp_path / "nope.jsonl"])
