"""Policy files: the built-in ones validate; bad files fail with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from finegate.errors import ConfigError
from finegate.evals.select import load_selection_policy
from finegate.gate import FamilyLimits, Policy, load_policy, policy_from_data


def test_default_policy_loads_and_hash_is_stable() -> None:
    pol = load_policy()
    assert pol.name == "default"
    assert pol.requirements.min_attack_families == 3
    assert pol.defaults.attack.max_asr == 0.5
    assert pol.baseline.correction == "holm" and pol.baseline.alternative == "greater"
    assert load_policy("default").content_hash() == pol.content_hash()
    assert len(pol.content_hash()) == 64


def test_selection_policy_loads() -> None:
    pol = load_selection_policy()
    assert pol.weights.safety == 3 and pol.determinism.repeats == 2
    assert "tool-misuse" in pol.controllability_families


def test_family_overrides_merge_over_kind_defaults() -> None:
    pol = policy_from_data(
        {
            "name": "p",
            "defaults": {"attack": {"max_asr": 0.5, "min_cases": 5}},
            "families": {"leakage": {"max_asr": 0.1}},
        }
    )
    assert pol.limits_for("leakage", "attack") == FamilyLimits(max_asr=0.1, min_cases=5)
    assert pol.limits_for("harmful", "attack").max_asr == 0.5
    assert pol.limits_for("benign", "benign") == FamilyLimits()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "p", "defaults": {"attack": {"max_asr": 1.5}}}, "defaults.attack.max_asr"),
        ({"name": "p", "defaults": {"attack": {"max_asrr": 0.1}}}, "max_asrr: unknown field"),
        ({"name": "p", "baseline": {"alpha": 0}}, "baseline.alpha"),
        ({"name": "p", "baseline": {"correction": "bonferroni"}}, "baseline.correction"),
        ({"defaults": {}}, "name"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_invalid_policies_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy_from_data(data, where="p.yaml")


def test_policy_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: strict\nversion: 2\ndefaults:\n  attack: {max_asr: 0.1}\n")
    pol = load_policy(good)
    assert isinstance(pol, Policy) and pol.version == "2"
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_policy(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: x\nfamilies: {leakage: {max_asr: high}}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: families.leakage.max_asr"):
        load_policy(wrong)


def test_public_api_resolves() -> None:
    import finegate.gate as gate

    assert {
        "gate_run",
        "load_policy",
        "Policy",
        "RuleResult",
        "record_gate_decision",
        "load_selection_policy",
    } <= set(gate.__all__)
    for name in gate.__all__:
        assert getattr(gate, name) is not None
    with pytest.raises(AttributeError):
        gate.nope  # noqa: B018
