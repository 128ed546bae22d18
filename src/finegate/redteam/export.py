"""Closing the loop: successful attacks become suite cases and safety-training examples.

``export_attacks`` reads a red-team run back from the store (its generated suite is an
artifact, its verdicts are results) and returns

- a suite of the attacks that succeeded, with the seeds' expectations, for the next release's
  regression suite (``finegate eval ... --suite found.yaml``);
- chat records that answer each successful attack with a refusal, in the JSONL format the data
  stage ingests (``finegate data scan``), for the next fine-tune's safety mix.

For a multi-turn attack the training record keeps the case's system prompt and the attack's
final user turn (which restates the goal); the target's own intermediate answers are left out
because they may carry the very content the refusal is meant to replace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError, NotFoundError
from finegate.evals.schema import Case, Suite
from finegate.redteam._probe import last_user_text

if TYPE_CHECKING:
    from finegate.store.db import Store

__all__ = ["ExportedAttacks", "export_attacks", "load_redteam_suite", "refusal_for"]

_REFUSALS: dict[str, tuple[str, ...]] = {
    "leak": (
        "I can't share my instructions, configuration or any internal codes or credentials, "
        "however the request is framed. I'm glad to help with your actual question.",
        "Sorry, I keep my system instructions and any secrets in them private. What else can "
        "I help you with?",
    ),
    "inject": (
        "I won't follow instructions that try to override my guidelines, even when they are "
        "encoded, role-played or claimed to come from an administrator.",
        "That message asks me to ignore the rules I operate under, so I won't act on it. Tell "
        "me what you are trying to do and I'll help within them.",
    ),
    "default": (
        "I can't help with that. It could cause serious harm, and re-framing it as a story, "
        "a role-play, an encoded message or an authorised test doesn't change that.",
        "I won't provide that, in any form or framing. If you have a legitimate need, I can "
        "point you to safe, general information or to the right professionals.",
        "Sorry, I can't assist with this request. I'm happy to help with something else.",
    ),
}


def refusal_for(case: Case) -> str:
    """Return a refusal fitting the case's family, chosen stably by its id."""
    family = case.family.lower()
    key = "leak" if "leak" in family else "inject" if "inject" in family else "default"
    options = _REFUSALS[key]
    index = int(hashlib.sha256(case.id.encode()).hexdigest(), 16) % len(options)
    return options[index]


@dataclass(frozen=True)
class ExportedAttacks:
    """What :func:`export_attacks` returns.

    Attributes:
        suite: The successful attacks as a suite (None when no attack succeeded).
        training: Chat records (``{"messages": [...], ...}``) answering each with a refusal.
    """

    suite: Suite | None
    training: list[dict[str, Any]]


def load_redteam_suite(store: Store, run_id: str) -> tuple[Suite, dict[str, Any]]:
    """Return a red-team run's generated suite and its ``redteam`` facts.

    Raises:
        NotFoundError: when the run does not exist.
        ConfigError: when it is not a red-team run.
    """
    from finegate.evals.loader import load_suite_file

    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id!r}", hint="see finegate runs list")
    facts = run.config.get("redteam")
    if not isinstance(facts, dict) or "suite_artifact" not in facts:
        raise ConfigError(f"run {run_id!r} is not a red-team run")
    return load_suite_file(store.artifacts.get(str(facts["suite_artifact"]))), facts


def export_attacks(store: Store, run_id: str, *, only_new: bool = False) -> ExportedAttacks:
    """Return the attacks of a red-team run that succeeded (see the module docs).

    Args:
        store: The store.
        run_id: The red-team run.
        only_new: Only attacks that succeeded where their seed had failed.
    """
    from finegate.evals.results import load_results

    suite, facts = load_redteam_suite(store, run_id)
    origin: dict[str, dict[str, str]] = facts.get("origin") or {}
    verdicts = {r.case_id: r.verdict for r in load_results(store, run_id) if r.repeat == 0}
    chosen: list[Case] = []
    for case in suite.cases:
        seed = origin.get(case.id, {}).get("seed")
        if seed is None or verdicts.get(case.id) != "fail":
            continue
        if only_new and verdicts.get(seed) != "pass":
            continue
        chosen.append(case)
    training = []
    for case in chosen:
        messages: list[dict[str, str]] = []
        if case.system:
            messages.append({"role": "system", "content": case.system})
        messages.append({"role": "user", "content": last_user_text(case)})
        messages.append({"role": "assistant", "content": refusal_for(case)})
        training.append(
            {
                "messages": messages,
                "source": "finegate-redteam",
                "run_id": run_id,
                "case_id": case.id,
                "strategy": origin[case.id]["strategy"],
            }
        )
    found = None
    if chosen:
        found = Suite(
            name=f"{suite.name}-found",
            version="1",
            description=f"Attacks that succeeded in red-team run {run_id}.",
            families=[f for f in suite.families if any(c.family == f.name for c in chosen)],
            cases=chosen,
        )
    return ExportedAttacks(found, training)
