"""Evidence documents: real recorded numbers and lineage, and nothing invented."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.evals import load_suite_file, run_eval_sync
from finegate.gate import record_gate_decision
from finegate.governance import NO_EVIDENCE, build_document, render
from finegate.models.mock import MockBackend, MockScript
from finegate.models.uri import load_backend
from finegate.registry import promote, register_model, set_guardrails
from finegate.store import Store

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"
SCRIPT = DATA / "mini_mock.yaml"


def _pct(rate: dict[str, float]) -> str:
    return f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


@pytest.fixture()
def tuned(store: Store) -> tuple[Store, str, str]:
    """A base run (mock:refuse), a 'tuned' run (scripted mock), a gate decision, a version."""
    suite = load_suite_file(DATA / "mini_suite.yaml")
    base = run_eval_sync(load_backend("mock:refuse"), suite, store=store)
    post = run_eval_sync(
        MockBackend(MockScript.from_file(SCRIPT), uri=f"mock:{SCRIPT}"), suite, store=store
    )
    train = store.start_run("tune", config={"method": "lora", "lora_rank": 8, "safety_mix": 0.04})
    store.finish_run(train, summary={"final_loss": 1.25, "steps": 40})
    post_run = store.get_run(post.run_id)
    assert post_run is not None and post_run.model_hash
    register_model(
        store,
        "bot",
        f"mock:{SCRIPT}",
        intended_use="Answer <support> questions.",
        eval_run_ids=[post.run_id],
        training_run_id=train,
        dataset_version_ids=["ds-clean-1"],
    )
    record_gate_decision(
        store,
        run_id=post.run_id,
        baseline_run_id=base.run_id,
        policy_hash="b" * 64,
        policy_name="default",
        passed=True,
        rules=[
            {
                "rule": "max_asr",
                "family": "harmful",
                "value": 0.67,
                "limit": 0.7,
                "verdict": "pass",
                "reason": "ok",
            }
        ],
    )
    promote(store, "bot@1", "approved")
    return store, base.run_id, post.run_id


def test_model_card_has_the_real_numbers_and_lineage(tuned: tuple[Store, str, str]) -> None:
    store, base_id, post_id = tuned
    md = render(build_document(store, "bot@1", "model-card"), "md")
    post, base = store.get_run(post_id), store.get_run(base_id)
    assert post is not None and base is not None
    for fam in post.summary["families"]:
        if fam["rate"]["rate"] is not None:
            assert _pct(fam["rate"]) in md, fam["family"]
    for fam in base.summary["families"]:
        if fam["rate"]["rate"] is not None:
            assert _pct(fam["rate"]) in md, fam["family"]
    for fact in (
        post_id,
        base_id,
        "ds-clean-1",
        "lora_rank",
        "safety_mix",
        "final_loss",
        "Answer <support> questions.",
        "max_asr",
        "registry.promote",
        "audit chain verified",
        "EU AI Act: Annex IV §2(g)",
        "MEASURE 2.6",
    ):
        assert fact in md, fact
    # Sections with nothing behind them say so, and only those.
    doc = build_document(store, "bot@1", "model-card")
    empty = {s.title for s in doc.sections if s.empty}
    assert empty == {
        "Privacy and memorization testing",
        "Guardrails configured (cybersecurity and runtime controls)",
        "Monitoring and incident history",
    }
    assert md.count(NO_EVIDENCE) == 3


def test_technical_doc_and_html(tuned: tuple[Store, str, str]) -> None:
    store, _, post_id = tuned
    set_guardrails(store, "bot@1", {"input": ["prompt-injection"]})
    doc = build_document(store, "bot@1", "technical")
    assert doc.title == "Technical documentation: bot@1"
    html = render(doc, "html")
    assert html.startswith("<!doctype html>") and "http" not in html.split("<body>")[0]
    assert "Answer &lt;support&gt; questions." in html and "<support>" not in html
    assert "b" * 64 in html  # the full policy hash in the technical document
    assert post_id in html and "prompt-injection" in html


def test_version_with_nothing_recorded(sqlite_store: Store) -> None:
    register_model(sqlite_store, "bare", "mock:refuse")
    doc = build_document(sqlite_store, "bare@1", "model-card")
    empty = [s.title for s in doc.sections if s.empty]
    assert len(empty) == 7  # everything except identity, stage history and change log
    md = render(doc, "md")
    assert "Intended use:" in md and md.count(NO_EVIDENCE) == 8


def test_cli_writes_documents(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from finegate.cli.main import app
    from finegate.store.db import reset_default_store

    monkeypatch.setenv("FINEGATE_DB", sqlite_store.url)
    reset_default_store()
    register_model(sqlite_store, "bare", "mock:refuse")
    out = tmp_path / "card.html"
    res = CliRunner().invoke(
        app, ["docs", "model-card", "bare@1", "--format", "html", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "<h1>Model card: bare@1</h1>" in out.read_text()
    res = CliRunner().invoke(app, ["docs", "technical", "bare@latest"])
    assert res.exit_code == 0 and "# Technical documentation: bare@1" in res.output
    reset_default_store()
