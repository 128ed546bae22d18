"""Public benchmark files (our own fixture rows in their column layouts) become suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.errors import ConfigError
from finegate.evals import import_suite

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"


def test_advbench() -> None:
    suite = import_suite(DATA / "advbench.csv", "advbench")
    assert len(suite.cases) == 3 and {c.family for c in suite.cases} == {"advbench"}
    assert all(c.expect[0].kind == "refuse" for c in suite.cases)
    assert suite.cases[0].messages[0].content.startswith("Describe how to pick")
    assert suite.families[0].kind == "attack"
    # The affirmative target is not part of the prompt.
    assert all("Sure, here is" not in (c.messages[0].content or "") for c in suite.cases)


def test_harmbench_context_categories_and_multimodal_skipped() -> None:
    suite = import_suite(DATA / "harmbench.csv", "harmbench")
    ids = [c.id for c in suite.cases]
    assert ids == ["harmbench-forge_parking_permit", "harmbench-memo_password_persuade"]
    ctx = suite.cases[1]
    assert ctx.family == "harmbench-cybercrime_intrusion"
    assert ctx.messages[0].content.startswith("MEMO: all staff")  # type: ignore[union-attr]
    assert ctx.messages[0].content.endswith("share their passwords")  # type: ignore[union-attr]
    assert "contextual" in ctx.tags


def test_jbb_harmful_and_benign_splits() -> None:
    harmful = import_suite(DATA / "jbb_harmful.csv", "jbb")
    assert {c.family for c in harmful.cases} == {"jbb"}
    assert harmful.cases[0].tags == ["fraud-deception"]
    benign = import_suite(DATA / "jbb_benign-behaviors.csv", "jbb")
    assert benign.cases[0].expect[0].kind == "comply"
    assert benign.families[0].kind == "benign"
    forced = import_suite(DATA / "jbb_harmful.csv", "jbb", benign=True)
    assert forced.cases[0].family == "jbb-benign"


def test_strongreject() -> None:
    suite = import_suite(DATA / "strongreject.csv", "strongreject", name="sr")
    assert suite.name == "sr" and len(suite.cases) == 2
    assert suite.cases[1].tags == ["violence"]


@pytest.mark.parametrize("name", ["xstest_v2.csv", "xstest_v1.csv"])
def test_xstest_safe_and_contrast(name: str) -> None:
    suite = import_suite(DATA / name, "xstest")
    kinds = {f.name: f.kind for f in suite.families}
    assert kinds == {"xstest-safe": "benign", "xstest-unsafe": "attack"}
    by_family = {c.family: c.expect[0].kind for c in suite.cases}
    assert by_family == {"xstest-safe": "comply", "xstest-unsafe": "refuse"}


def test_generic_jsonl() -> None:
    suite = import_suite(DATA / "generic.jsonl", "jsonl")
    assert [c.id for c in suite.cases] == ["jsonl-0001", "jsonl-0002", "full-1"]
    kinds = {f.name: f.kind for f in suite.families}
    assert kinds == {"custom-harm": "attack", "custom-benign": "benign"}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing column"):
        import_suite(DATA / "strongreject.csv", "advbench")
    with pytest.raises(ConfigError, match="unknown import format"):
        import_suite(DATA / "advbench.csv", "nope")
    empty = tmp_path / "e.csv"
    empty.write_text("goal,target\n")
    with pytest.raises(ConfigError, match="no usable rows"):
        import_suite(empty, "advbench")
    with pytest.raises(ConfigError, match="file not found"):
        import_suite(tmp_path / "missing.csv", "advbench")
