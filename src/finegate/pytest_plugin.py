r"""pytest plugin: every gate rule of a policy becomes a test item.

::

    pytest --finegate-suite core --finegate-model hf:embedded \\
           --finegate-policy policy.yaml --finegate-only --junitxml gate.xml

The plugin is registered through the ``pytest11`` entry point, so installing finegate is
enough. Without ``--finegate-model`` it does nothing. Rules are planned from the policy and the
suite's families at collection time (``--collect-only`` lists them without running anything);
the evaluation runs once, when the first rule item runs, through the same runner and call cache
as ``finegate eval``, and the gate decision is recorded unless ``--finegate-no-record``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from finegate.gate.gate import GateResult
    from finegate.gate.rules import PlannedRule

__all__ = ["GateRuleFailed", "GateRuleItem"]

_STATE = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--finegate-*`` options."""
    group = parser.getgroup("finegate", "finegate release gate")
    group.addoption(
        "--finegate-model",
        metavar="URI",
        default=None,
        help="Evaluate this model URI and turn each gate rule into a test.",
    )
    group.addoption(
        "--finegate-suite",
        metavar="SUITE",
        default="core",
        help="Built-in suite name or suite file (default: core).",
    )
    group.addoption(
        "--finegate-policy",
        metavar="FILE",
        default=None,
        help="Gate policy YAML (default: the built-in default policy).",
    )
    group.addoption(
        "--finegate-baseline",
        metavar="RUN_ID",
        default=None,
        help="A stored run of the same suite for the relative rules.",
    )
    group.addoption(
        "--finegate-system-prefix",
        metavar="TEXT",
        default=None,
        help="System prefix (text, @FILE or builtin:safety).",
    )
    group.addoption(
        "--finegate-max-tokens",
        type=int,
        default=128,
        metavar="N",
        help="New tokens per reply (default 128).",
    )
    group.addoption(
        "--finegate-only",
        action="store_true",
        default=False,
        help="Run only the gate items (deselect the project's own tests).",
    )
    group.addoption(
        "--finegate-no-record",
        action="store_true",
        default=False,
        help="Do not store the gate decision.",
    )


class GateRuleFailed(Exception):
    """A gate rule's verdict was fail."""


class _GateCollector(pytest.Collector):
    """The parent node of the rule items (``finegate-gate::<family>/<rule>``)."""

    def collect(self) -> list[pytest.Item]:
        return []


class GateRuleItem(pytest.Item):
    """One gate rule as a test: passes when the rule's verdict is pass."""

    def __init__(self, *, planned: PlannedRule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.planned = planned

    def runtest(self) -> None:
        """Evaluate the model once (shared by all items), then check this rule."""
        result = _gate_result(self.config)
        rule = next((r for r in result.rules if r.id == self.planned.id), None)
        if rule is None:
            raise GateRuleFailed(
                f"{self.planned.id}: the rule was not evaluated (its family has no result)"
            )
        self.user_properties.append(("value", rule.value))
        self.user_properties.append(("limit", rule.limit))
        if rule.verdict != "pass":
            raise GateRuleFailed(f"{rule.id}: {rule.reason}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """Show the rule's reason, not a traceback."""
        if isinstance(excinfo.value, GateRuleFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Name the item after its rule."""
        return self.path, None, f"finegate gate rule {self.planned.id}"


def _gate_result(config: pytest.Config) -> GateResult:
    state = config.stash[_STATE]
    if "error" in state:
        raise GateRuleFailed(state["error"])
    if "result" not in state:
        try:
            state["result"] = _evaluate(config, state)
        except Exception as exc:  # noqa: BLE001 - every item reports the one failure
            state["error"] = f"the gate evaluation failed: {type(exc).__name__}: {exc}"
            raise GateRuleFailed(state["error"]) from exc
    result: GateResult = state["result"]
    return result


def _evaluate(config: pytest.Config, state: dict[str, Any]) -> GateResult:
    import asyncio

    from finegate.evals.runner import EvalConfig, run_eval
    from finegate.gate.gate import gate_run
    from finegate.models.types import GenerationParams
    from finegate.models.uri import load_backend
    from finegate.store.db import open_store

    store = open_store()
    backend = load_backend(str(config.getoption("finegate_model")))
    eval_config = EvalConfig(
        params=GenerationParams(max_tokens=int(config.getoption("finegate_max_tokens"))),
        system_prefix=state["system_prefix"],
    )

    async def go() -> str:
        try:
            run = await run_eval(
                backend,
                state["suite"],
                store=store,
                config=eval_config,
                labels={"suite_spec": config.getoption("finegate_suite"), "pytest": True},
            )
            return run.run_id
        finally:
            await backend.aclose()

    run_id = asyncio.run(go())
    return gate_run(
        store,
        run_id,
        policy=state["policy"],
        baseline_run_id=config.getoption("finegate_baseline"),
        record=not config.getoption("finegate_no_record"),
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append one item per planned gate rule (or replace the items with ``--finegate-only``)."""
    if not config.getoption("finegate_model", default=None):
        return
    from finegate.evals.perturb import resolve_system_prefix
    from finegate.evals.runner import family_kinds
    from finegate.evals.select import load_selection_suite
    from finegate.gate.policy import load_policy
    from finegate.gate.rules import plan_rules

    suite = load_selection_suite(str(config.getoption("finegate_suite")))
    policy = load_policy(config.getoption("finegate_policy"))
    prefix = config.getoption("finegate_system_prefix")
    present = {c.family for c in suite.cases}
    kinds = {f: k for f, k in family_kinds(suite).items() if f in present}
    plan = plan_rules(policy, kinds, baseline=bool(config.getoption("finegate_baseline")))
    config.stash[_STATE] = {
        "suite": suite,
        "policy": policy,
        "system_prefix": resolve_system_prefix(prefix) if prefix else None,
    }
    parent = _GateCollector.from_parent(session, name="finegate-gate")
    # "family/rule": JUnit writers split node ids at "::", so the item name avoids it.
    new = [GateRuleItem.from_parent(parent, name=f"{p.scope}/{p.rule}", planned=p) for p in plan]
    if config.getoption("finegate_only"):
        if items:
            config.hook.pytest_deselected(items=list(items))
        items[:] = new
    else:
        items.extend(new)
