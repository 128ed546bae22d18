"""The built-in suites: every family file validates, is big enough, and is internally consistent.

These tests read the YAML with plain ``yaml.safe_load`` and validate with the schema models, so
they check the files themselves, independently of the suite loader.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from finegate.evals.schema import Case, FamilyInfo

SUITES = Path(__file__).resolve().parents[2] / "src" / "finegate" / "resources" / "suites"
FAMILIES_DIR = SUITES / "families"

EXPECTED_FAMILIES = {
    "injection-direct": "attack",
    "injection-indirect": "attack",
    "tool-misuse": "attack",
    "multi-turn-pressure": "attack",
    "leakage": "attack",
    "jailbreak-roleplay": "attack",
    "jailbreak-encoding": "attack",
    "jailbreak-policy-framing": "attack",
    "harmful-requests": "attack",
    "over-refusal": "benign",
    "controllability-schema": "capability",
    "controllability-hierarchy": "capability",
    "task-fit": "capability",
}
MIN_CASES = 40
BASE64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")


@cache
def _raw(family: str) -> dict[str, Any]:
    data = yaml.safe_load((FAMILIES_DIR / f"{family}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), family
    return data


@cache
def _cases(family: str) -> tuple[Case, ...]:
    return tuple(Case.model_validate({**raw, "family": family}) for raw in _raw(family)["cases"])


def _all_cases() -> list[Case]:
    return [case for family in EXPECTED_FAMILIES for case in _cases(family)]


def _context_text(case: Case) -> str:
    parts = [case.system or ""] + [d.content for d in case.documents]
    parts += [m.content or "" for m in case.messages if m.role == "tool"]
    return "\n".join(parts)


def test_every_family_has_a_file_and_no_strays() -> None:
    present = {p.stem for p in FAMILIES_DIR.glob("*.yaml")}
    assert present == set(EXPECTED_FAMILIES)


@pytest.mark.parametrize("family", sorted(EXPECTED_FAMILIES))
def test_family_file_is_plain_yaml(family: str) -> None:
    text = (FAMILIES_DIR / f"{family}.yaml").read_text(encoding="utf-8")
    anchors = re.search(r"(?m)(?:^|\s)[&*]id\d+\b", text)
    assert not anchors, "no anchors/aliases: keep cases readable"
    assert "\t" not in text


@pytest.mark.parametrize("family", sorted(EXPECTED_FAMILIES))
def test_family_header(family: str) -> None:
    raw = _raw(family)
    assert set(raw) == {"family", "kind", "rationale", "cases"}
    assert raw["family"] == family
    info = FamilyInfo(name=raw["family"], kind=raw["kind"], rationale=raw["rationale"])
    assert info.kind == EXPECTED_FAMILIES[family]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", info.rationale.strip()) if s]
    assert 4 <= len(sentences) <= 8, f"{family}: rationale should be one paragraph of 4-6 sentences"


@pytest.mark.parametrize("family", sorted(EXPECTED_FAMILIES))
def test_family_cases_validate_and_suffice(family: str) -> None:
    cases = _cases(family)
    assert len(cases) >= MIN_CASES, f"{family} has {len(cases)} cases"
    for case in cases:
        assert case.id.startswith(f"{family}-"), case.id
        assert case.tags, f"{case.id}: no tags"
        assert case.max_tokens is not None and case.max_tokens <= 128, case.id


def test_case_ids_unique_across_families() -> None:
    ids = [case.id for case in _all_cases()]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes


@pytest.mark.parametrize("family", sorted(EXPECTED_FAMILIES))
def test_expectations_fit_the_family_kind(family: str) -> None:
    kind = EXPECTED_FAMILIES[family]
    for case in _cases(family):
        kinds = {e.kind for e in case.expect}
        if kind == "benign":
            assert kinds == {"comply"}, case.id
        elif kind == "attack":
            assert "comply" not in kinds and kinds <= {
                "refuse",
                "no_leak",
                "no_tool_call",
                "tool_args_valid",
                "follows_system",
            }, case.id
        else:
            assert kinds <= {"schema", "follows_system", "match"}, case.id


def test_regexes_compile_and_schemas_are_valid() -> None:
    for case in _all_cases():
        for exp in case.expect:
            for pattern in (exp.regex, exp.forbid_regex):
                if pattern is not None:
                    re.compile(pattern)
            if exp.schema_ is not None:
                jsonschema.Draft202012Validator.check_schema(exp.schema_)
        for tool in case.tools:
            jsonschema.Draft202012Validator.check_schema(tool.parameters)


def test_no_leak_canaries_are_planted_in_context() -> None:
    checked = 0
    for case in _all_cases():
        if not any(e.kind == "no_leak" for e in case.expect):
            continue
        assert case.canaries, f"{case.id}: no_leak needs canaries to be machine-checkable"
        context = _context_text(case)
        for canary in case.canaries:
            assert canary in context, f"{case.id}: canary {canary!r} not in system/documents"
            assert not any(
                canary in (m.content or "") for m in case.messages if m.role == "user"
            ), f"{case.id}: canary {canary!r} given by user"
        checked += 1
    assert checked >= 50


def test_tool_references_exist() -> None:
    for case in _all_cases():
        names = {t.name for t in case.tools}
        assert len(names) == len(case.tools), f"{case.id}: duplicate tool names"
        call_ids: dict[str, str] = {}
        for message in case.messages:
            for call in message.tool_calls:
                assert call.name in names, f"{case.id}: scripted call to undeclared {call.name}"
                call_ids[call.id] = call.name
            if message.role == "tool":
                assert message.tool_call_id in call_ids, f"{case.id}: orphan tool result"
                assert message.name == call_ids[message.tool_call_id], case.id
        if any(e.kind in ("no_tool_call", "tool_args_valid") for e in case.expect):
            assert case.tools, case.id


def test_tool_misuse_cases_offer_something_to_misuse() -> None:
    for case in _cases("tool-misuse"):
        constrained = any(
            t.allowed is False
            or "pattern" in str(t.parameters)
            or "enum" in str(t.parameters)
            or "maximum" in str(t.parameters)
            for t in case.tools
        )
        assert constrained, f"{case.id}: no forbidden tool and no argument constraint"


def test_jailbreak_encoding_base64_payloads_decode() -> None:
    found = 0
    for case in _cases("jailbreak-encoding"):
        if "base64" not in case.tags:
            continue
        text = "\n".join(m.content or "" for m in case.messages if m.role == "user")
        tokens = BASE64_TOKEN.findall(text)
        assert tokens, f"{case.id}: tagged base64 but no payload found"
        for token in tokens:
            try:
                decoded = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:  # pragma: no cover
                pytest.fail(f"{case.id}: {token!r} does not decode: {exc}")
            assert decoded.isprintable(), case.id
            payload = case.notes.removeprefix("payload: ")
            if "double" not in case.tags:
                assert decoded == payload, case.id
        found += 1
    assert found >= 5


def test_jailbreak_encoding_cases_record_their_payload() -> None:
    for case in _cases("jailbreak-encoding"):
        assert case.notes.startswith("payload: "), case.id
        payload = case.notes.removeprefix("payload: ")
        user = " ".join(m.content or "" for m in case.messages if m.role == "user")
        assert payload not in user, f"{case.id}: payload appears unencoded"


def test_injection_cases_are_machine_checkable() -> None:
    for family in ("injection-direct", "injection-indirect"):
        for case in _cases(family):
            assert any(e.forbid_regex or e.kind == "no_leak" for e in case.expect), case.id


def test_indirect_injection_lives_in_retrieved_content() -> None:
    hidden = {"zero-width", "unicode-tags", "white-on-white", "html-comment", "markdown-image"}
    seen: set[str] = set()
    for case in _cases("injection-indirect"):
        assert case.documents or any(m.role == "tool" for m in case.messages), case.id
        seen |= hidden & set(case.tags)
    assert seen == hidden


def test_multi_turn_cases_have_generated_turns() -> None:
    for case in _cases("multi-turn-pressure"):
        users = [m for m in case.messages if m.role == "user"]
        assert 3 <= len(users) <= 6, case.id
        assert any(m.role == "assistant" and m.content is None for m in case.messages), case.id
        assert case.messages[-1].role == "user", case.id


def test_task_fit_prompts_ask_for_only_the_answer() -> None:
    for case in _cases("task-fit"):
        assert "Answer with only the" in (case.messages[-1].content or ""), case.id
        assert all(e.kind == "match" for e in case.expect), case.id


def test_core_suite_references_existing_families() -> None:
    core = yaml.safe_load((SUITES / "core.yaml").read_text(encoding="utf-8"))
    assert core["name"] == "core"
    assert isinstance(core["version"], str)
    include = core["include"]
    families = [item["family"] for item in include]
    assert len(families) == len(set(families))
    assert set(families) == set(EXPECTED_FAMILIES), "core should cover every family"
    total = 0
    for item in include:
        available = len(_cases(item["family"]))
        assert 1 <= item["count"] <= available, item
        if EXPECTED_FAMILIES[item["family"]] == "attack":
            assert item["count"] >= 8, item
        total += item["count"]
    assert 80 <= total <= 120, total
