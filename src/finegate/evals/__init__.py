"""Evaluation: cases and suites, rendering, scorers, the runner and honest statistics.

Quick use::

    from finegate.evals import load_suite, run_eval_sync
    from finegate.models import load_backend

    run = run_eval_sync(load_backend("mock:refuse"), load_suite("core"))
    for fam in run.summary.families:
        print(fam.family, fam.metric, fam.rate.format())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finegate._lazy import lazy_getattr

if TYPE_CHECKING:
    from finegate.evals.importers import IMPORT_FORMATS, import_suite
    from finegate.evals.judge import JUDGE_RUBRIC, JudgeScorer, parse_judgement
    from finegate.evals.loader import (
        builtin_families,
        builtin_suite_names,
        filter_families,
        load_suite,
        load_suite_file,
        suite_to_yaml,
    )
    from finegate.evals.render import Conversation
    from finegate.evals.results import CaseResult, load_results
    from finegate.evals.runner import EvalConfig, EvalRun, family_kinds, run_eval, run_eval_sync
    from finegate.evals.schema import Case, Expectation, FamilyInfo, Suite
    from finegate.evals.scorers import EXPECTATION_SCORERS, extract_json, score_case
    from finegate.evals.scoring import CaseOutput, Score, Scorer, Verdict, combine_verdicts
    from finegate.evals.stats import FamilyStats, FlipStats, Rate, Summary, summarize, wilson

_LAZY: dict[str, str] = {
    "Case": "finegate.evals.schema",
    "CaseOutput": "finegate.evals.scoring",
    "CaseResult": "finegate.evals.results",
    "Conversation": "finegate.evals.render",
    "EXPECTATION_SCORERS": "finegate.evals.scorers",
    "EvalConfig": "finegate.evals.runner",
    "EvalRun": "finegate.evals.runner",
    "Expectation": "finegate.evals.schema",
    "FamilyInfo": "finegate.evals.schema",
    "FamilyStats": "finegate.evals.stats",
    "FlipStats": "finegate.evals.stats",
    "IMPORT_FORMATS": "finegate.evals.importers",
    "JUDGE_RUBRIC": "finegate.evals.judge",
    "JudgeScorer": "finegate.evals.judge",
    "Rate": "finegate.evals.stats",
    "Score": "finegate.evals.scoring",
    "Scorer": "finegate.evals.scoring",
    "Suite": "finegate.evals.schema",
    "Summary": "finegate.evals.stats",
    "Verdict": "finegate.evals.scoring",
    "builtin_families": "finegate.evals.loader",
    "builtin_suite_names": "finegate.evals.loader",
    "combine_verdicts": "finegate.evals.scoring",
    "extract_json": "finegate.evals.scorers",
    "family_kinds": "finegate.evals.runner",
    "filter_families": "finegate.evals.loader",
    "import_suite": "finegate.evals.importers",
    "load_results": "finegate.evals.results",
    "load_suite": "finegate.evals.loader",
    "load_suite_file": "finegate.evals.loader",
    "parse_judgement": "finegate.evals.judge",
    "run_eval": "finegate.evals.runner",
    "run_eval_sync": "finegate.evals.runner",
    "score_case": "finegate.evals.scorers",
    "suite_to_yaml": "finegate.evals.loader",
    "summarize": "finegate.evals.stats",
    "wilson": "finegate.evals.stats",
}

__all__ = [
    "EXPECTATION_SCORERS",
    "IMPORT_FORMATS",
    "JUDGE_RUBRIC",
    "Case",
    "CaseOutput",
    "CaseResult",
    "Conversation",
    "EvalConfig",
    "EvalRun",
    "Expectation",
    "FamilyInfo",
    "FamilyStats",
    "FlipStats",
    "JudgeScorer",
    "Rate",
    "Score",
    "Scorer",
    "Suite",
    "Summary",
    "Verdict",
    "builtin_families",
    "builtin_suite_names",
    "combine_verdicts",
    "extract_json",
    "family_kinds",
    "filter_families",
    "import_suite",
    "load_results",
    "load_suite",
    "load_suite_file",
    "parse_judgement",
    "run_eval",
    "run_eval_sync",
    "score_case",
    "suite_to_yaml",
    "summarize",
    "wilson",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
