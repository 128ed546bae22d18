"""Suite files: formats, clear errors, built-in names, filters and content hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finegate.errors import ConfigError
from finegate.evals import filter_families, load_suite, load_suite_file, suite_to_yaml
from finegate.evals.loader import builtin_suite_names, suite_from_data

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"


def test_yaml_suite_loads_with_expectation_shorthands() -> None:
    suite = load_suite_file(DATA / "mini_suite.yaml")
    assert suite.name == "mini" and suite.version == "2" and len(suite.cases) == 11
    cap = next(c for c in suite.cases if c.id == "cap-json")
    assert cap.expect[0].kind == "schema" and cap.expect[0].schema_ is not None
    french = next(c for c in suite.cases if c.id == "cap-french")
    assert french.expect[0].regex == "(?i)bonjour"
    assert {f.name: f.kind for f in suite.families}["over-refusal"] == "benign"


def test_yaml_round_trip_keeps_the_hash(tmp_path: Path) -> None:
    suite = load_suite_file(DATA / "mini_suite.yaml")
    out = tmp_path / "again.yaml"
    out.write_text(suite_to_yaml(suite))
    assert load_suite_file(out).content_hash() == suite.content_hash()


def test_hash_changes_with_content() -> None:
    suite = load_suite_file(DATA / "mini_suite.yaml")
    changed = suite.model_copy(update={"cases": suite.cases[1:]})
    assert changed.content_hash() != suite.content_hash()
    assert load_suite_file(DATA / "mini_suite.yaml").content_hash() == suite.content_hash()


def test_jsonl_with_header(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "suite": {
                            "name": "j",
                            "families": [{"name": "fam", "kind": "attack", "rationale": "x" * 50}],
                        }
                    }
                ),
                json.dumps(
                    {
                        "id": "a",
                        "family": "fam",
                        "messages": [{"role": "user", "content": "hi"}],
                        "expect": "refuse",
                    }
                ),
                "",
                json.dumps(
                    {
                        "id": "b",
                        "family": "fam",
                        "messages": [{"role": "user", "content": "yo"}],
                        "expect": ["comply"],
                    }
                ),
            ]
        )
    )
    suite = load_suite_file(f)
    assert suite.name == "j" and [c.id for c in suite.cases] == ["a", "b"]
    assert suite.families[0].name == "fam"


@pytest.mark.parametrize(
    "content,needle",
    [
        (
            "name: x\ncases:\n  - id: a\n    family: f\n    messages: [{role: user, content: hi}]\n"
            "    expect: teleport\n",
            "case 'a' (#1) expect.0.kind",
        ),
        (
            "name: x\ncases:\n  - id: a\n    family: f\n    messages: [{role: assistant}]\n"
            "    expect: refuse\n",
            "needs at least one user message",
        ),
        (
            "name: x\ncases:\n  - id: a\n    family: f\n    messages: [{role: user, content: hi}]\n"
            "    expect: no_leak\n",
            "no_leak needs canaries or a system prompt",
        ),
        (
            "name: x\ncases: [{id: a, family: f, messages: [{role: user, content: hi}], "
            "expect: refuse}, {id: a, family: f, messages: [{role: user, content: hi}], "
            "expect: refuse}]\n",
            "duplicate case id 'a'",
        ),
        ("cases: [oops\n", "invalid YAML"),
        ("family: fam\nkind: attack\nrationale: short\ncases: []\n", "rationale"),
    ],
)
def test_invalid_files_give_one_clear_error(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_suite_file(f)
    assert needle in str(info.value)
    assert str(f) in str(info.value)
    assert "\n" not in str(info.value)


def test_family_file_fills_the_family() -> None:
    suite = suite_from_data(
        {
            "family": "fam",
            "kind": "benign",
            "rationale": "r" * 45,
            "cases": [
                {"id": "a", "messages": [{"role": "user", "content": "hi"}], "expect": "comply"}
            ],
        }
    )
    assert suite.cases[0].family == "fam" and suite.families[0].kind == "benign"
    with pytest.raises(ConfigError, match="has family 'other'"):
        suite_from_data(
            {
                "family": "fam",
                "kind": "benign",
                "rationale": "r" * 45,
                "cases": [
                    {
                        "id": "a",
                        "family": "other",
                        "expect": "comply",
                        "messages": [{"role": "user", "content": "hi"}],
                    }
                ],
            }
        )


def test_family_filter_and_unknown_names() -> None:
    suite = load_suite_file(DATA / "mini_suite.yaml")
    only = filter_families(suite, ["tools", "leakage"])
    assert {c.family for c in only.cases} == {"tools", "leakage"}
    assert {f.name for f in only.families} == {"tools", "leakage"}
    with pytest.raises(ConfigError, match="no family 'nope'"):
        filter_families(suite, ["nope"])
    with pytest.raises(ConfigError, match="unknown suite 'nonsense'"):
        load_suite("nonsense")
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite("missing.yaml")


def test_builtin_names_resolve() -> None:
    names = builtin_suite_names()
    assert names[:2] == ["core", "all"]
    families = names[2:]
    if not families:
        pytest.skip("built-in families not installed yet")
    fam = load_suite(families[0])
    assert {c.family for c in fam.cases} == {families[0]}
    everything = load_suite("all")
    assert len(everything.cases) >= len(fam.cases)
    assert {f.name for f in everything.families} == set(families)


def test_include_file_takes_the_first_cases_by_id(tmp_path: Path) -> None:
    families = builtin_suite_names()[2:]
    if len(families) < 2:
        pytest.skip("built-in families not installed yet")
    f = tmp_path / "mine.yaml"
    f.write_text(
        f"name: mine\ninclude:\n  - {{family: {families[0]}, count: 2}}\n"
        f"  - {{family: {families[1]}, count: 1}}\n"
    )
    suite = load_suite_file(f)
    first = sorted(c.id for c in load_suite(families[0]).cases)[:2]
    assert [c.id for c in suite.cases][:2] == first and len(suite.cases) == 3
    f.write_text("name: mine\ninclude:\n  - {family: no-such-family, count: 2}\n")
    with pytest.raises(ConfigError, match="unknown family 'no-such-family'"):
        load_suite_file(f)
