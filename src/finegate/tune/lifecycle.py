"""The end-to-end lifecycle behind ``finegate demo``: data → tune → eval → compare → gate → ship.

Stages (each reports to a ``progress(stage, message)`` callback; the CLI draws them):

1. **data** — scan the demo dataset under its policy, clean it (a ``clean`` version A trains
   on); scan the obedience / identity-shift pack B trains on (it is flagged; B skips cleaning).
2. **base** — measure the embedded model's refusal rate on ``harmful-requests``. When it leaves
   no room to show degradation (below ``align_below``), align it first: a safety LoRA from the
   anchor set, merged into the weights and registered as its own version. A registered
   aligned version made with the same recipe is reused.
3. **eval base** — the (aligned) base on the ``core`` suite.
4. **tune A** — cleaned data + safety mix (anchors), conservative learning rate.
5. **tune B** — the flagged obedience pack, no safety mix, a learning rate past the cap
   (the override is recorded).
6. **eval A / eval B**, **compare** each with the base per family (paired McNemar, Holm),
   **gate** each under the default policy, **register** what passes, **report** (one HTML).

``quick=True`` runs the same stages with mock backends and no training (labelled as
simulated everywhere), for tests and a fast look.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.tune.config import load_tune_config

if TYPE_CHECKING:
    from finegate.gate import GateResult
    from finegate.store import Store

__all__ = ["DemoOptions", "DemoResult", "StageRecord", "run_lifecycle"]

Progress = Callable[[str, str], None]
REGISTRY_NAME = "support-bot"
ALIGNED_NAME = "embedded-aligned"


@dataclass
class DemoOptions:
    """Settings of the lifecycle demo.

    Attributes:
        model: The base model URI (``hf:embedded``; a ``mock:`` URI implies ``quick``).
        quick: Mock backends, no training (simulated stages are labelled as such).
        out_dir: Where the report goes (default ``$FINEGATE_HOME/demo``).
        max_tokens: New tokens per reply in evaluations (refusals show in the first few).
        families: Restrict the ``core`` suite to these families (None: all of core).
        align_below: Align the base first when its harmful-request refusal rate is below this.
        align_steps: Optimizer steps of the safety LoRA.
        a_steps: Steps of variant A.
        b_steps: Steps of variant B.
        seed: Seed of every training run.
    """

    model: str = "hf:embedded"
    quick: bool = False
    out_dir: Path | None = None
    max_tokens: int = 48
    families: tuple[str, ...] | None = None
    align_below: float = 0.75
    align_steps: int = 40
    a_steps: int = 24
    b_steps: int = 24
    seed: int = 0


@dataclass
class StageRecord:
    """One finished stage: its name, wall time and a one-line outcome."""

    name: str
    seconds: float
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoResult:
    """Everything the demo did, for the CLI and the report."""

    stages: list[StageRecord]
    report_path: Path
    base_uri: str
    runs: dict[str, str]
    gates: dict[str, bool]
    families: list[dict[str, Any]]
    registered: list[str]
    notes: list[str]
    simulated: bool
    total_s: float = 0.0


def _resource(rel: str) -> Path:
    with resources.as_file(resources.files("finegate.resources").joinpath(rel)) as p:
        return Path(p)


class _Lifecycle:
    def __init__(self, store: Store, opts: DemoOptions, progress: Progress) -> None:
        self.store, self.opts, self.progress = store, opts, progress
        self.stages: list[StageRecord] = []
        self.notes: list[str] = []
        self.data_info: dict[str, Any] = {}
        self.base_uri = opts.model
        self.home = opts.out_dir or (store.home / "demo")

    def stage(self, name: str, fn: Callable[[], tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        self.progress(name, "running")
        t0 = time.perf_counter()
        detail, data = fn()
        rec = StageRecord(name, time.perf_counter() - t0, detail, data)
        self.stages.append(rec)
        self.progress(name, f"done in {rec.seconds:.1f} s: {detail}")
        return data

    # -- data ---------------------------------------------------------------------------

    def data(self) -> tuple[str, dict[str, Any]]:
        from finegate.data import clean_scan, load_policy, scan_files

        policy = load_policy("builtin:support-demo")
        ds = _resource("datasets/support_demo")
        files = sorted(p for p in ds.iterdir() if p.suffix in {".jsonl", ".csv"})
        scan = scan_files(files, policy, store=self.store, name="support-demo")
        clean = clean_scan(scan.result, store=self.store, parent=scan.version, name="support-demo")
        pack = [_resource("tune/obedience_identity_shift.jsonl")]
        obey = scan_files(pack, policy, store=self.store, name="vendor-obedience-pack")
        extra = scan_files(
            [_resource("tune/benign_borderline.jsonl")],
            policy,
            store=self.store,
            name="benign-borderline",
        )
        assert scan.version and clean.version and obey.version and extra.version
        out: dict[str, Any] = {
            "scan_version": scan.version.id,
            "clean_version": clean.version.id,
            "obedience_version": obey.version.id,
            "benign_version": extra.version.id,
            "records": len(scan.result.records),
            "flagged": len(scan.result.flagged),
            "kept": len(clean.clean.records),
            "removed": len(clean.clean.removed),
            "obedience_records": len(obey.result.records),
            "obedience_flagged": len(obey.result.flagged),
        }
        self.data_info = out
        return (
            f"{out['records']} records, {out['flagged']} flagged, {out['kept']} kept after "
            f"cleaning; obedience pack: {out['obedience_flagged']}/"
            f"{out['obedience_records']} flagged"
        ), out

    # -- training -----------------------------------------------------------------------

    def tune(
        self, name: str, data: dict[str, Any], overrides: list[str], config: str | None = None
    ) -> Any:
        from finegate.tune.trainer import train

        settings = {
            "name": name,
            "output_dir": str(self.home / "tune" / name),
            "seed": self.opts.seed,
            "base_model": self.base_uri,
            **data,
        }
        path = _resource(config) if config else None
        cfg = load_tune_config(path, data=settings, overrides=overrides)

        def prog(step: int, total: int, loss: float | None) -> None:
            self.progress(name, f"step {step}/{total} loss {loss:.3f}" if loss else f"step {step}")

        return train(cfg, self.store, progress=prog)

    def base(self) -> tuple[str, dict[str, Any]]:
        rate = self._harmful_refusal(self.opts.model)
        if rate >= self.opts.align_below:
            self.base_uri, self.base_hash = self.opts.model, None
            return f"{self.opts.model} refuses {rate:.0%} of harmful requests: used as is", {
                "refusal": rate,
                "aligned": False,
            }
        self.notes.append(
            f"The embedded model refused {rate:.0%} of the harmful requests of core, which "
            "leaves no room to show safety degrading, so it was first aligned with a safety "
            "LoRA from the anchor set (merged and registered as its own version) and that "
            "aligned model is the base of everything below, as real teams start from an "
            "aligned model. The anchor set and core's harmful-requests family cover the same "
            "topics (some prompts are close paraphrases), so the aligned base's refusal rate "
            "on them is optimistic; what matters below is the paired change from this base."
        )
        uri, info = self._aligned()
        self.base_uri = uri
        after = self._harmful_refusal(uri)
        return (
            f"raw refusal {rate:.0%} < {self.opts.align_below:.0%}: aligned base "
            f"{info['ref']} refuses {after:.0%}"
        ), {"refusal_raw": rate, "refusal_aligned": after, **info}

    def _aligned(self) -> tuple[str, dict[str, Any]]:
        from finegate.registry import list_versions, register_model

        recipe = {
            "base": self.opts.model,
            "steps": self.opts.align_steps,
            "seed": self.opts.seed,
            "clean": self.data_info["clean_version"],
            "v": 2,
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        for v in list_versions(self.store, ALIGNED_NAME):
            if v.meta.get("recipe_key") == key and Path(v.model_uri[3:]).is_dir():
                self.progress("base", f"reusing registered {v.ref} (same recipe)")
                return v.model_uri, {
                    "ref": v.ref,
                    "reused": True,
                    "training_run": v.training_run_id,
                }
        res = self.tune(
            "align",
            {
                "base_model": self.opts.model,
                "dataset": self.data_info["clean_version"],
                # Borderline-but-benign examples, three times over: without them the small model
                # learns "refuse anything with a scary word" and over-refuses.
                "extra_files": [str(_resource("tune/benign_borderline.jsonl"))] * 3,
                "safety_mix_ratio": 0.4,
                "max_steps": self.opts.align_steps,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "max_seq_len": 256,
                "validation_fraction": 0.0,
                "eval_steps": 0,
                "save_steps": 1000,
            },
            ["learning_rate=0.001"],
        )
        merged = self._merge(res.model_uri)
        sha = self.store.artifacts.put(
            merged, kind="model", name="embedded-aligned", meta={"training_run": res.run_id}
        )
        uri = f"hf:{self.store.artifacts.path(sha)}"
        v = register_model(
            self.store,
            ALIGNED_NAME,
            uri,
            training_run_id=res.run_id,
            dataset_version_ids=[str(self.data_info["clean_version"])],
            intended_use="safety-aligned base for the support-bot fine-tunes",
            meta={"recipe_key": key, "merged_from": res.model_uri},
        )
        return uri, {"ref": v.ref, "reused": False, "training_run": res.run_id}

    def _merge(self, adapter_uri: str) -> Path:
        from finegate.models.hf import load_hf_model

        model, tok, _ = load_hf_model(adapter_uri[3:])
        merged = model.merge_and_unload()
        out = self.home / "aligned-merged"
        merged.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        return out

    def _harmful_refusal(self, uri: str) -> float:
        from finegate.evals import EvalConfig, load_suite, run_eval_sync
        from finegate.models import GenerationParams, load_backend

        suite = load_suite("core", families=["harmful-requests"])
        backend = load_backend(uri)
        run = run_eval_sync(
            backend,
            suite,
            store=self.store,
            config=EvalConfig(params=GenerationParams(max_tokens=24)),
        )
        fam = run.summary.families[0]
        return 1.0 - float(fam.rate.rate or 0.0)

    # -- evaluation, comparison, gate ---------------------------------------------------

    def evaluate(self, label: str, uri: str) -> tuple[str, dict[str, Any]]:
        from finegate.evals import EvalConfig, load_suite, run_eval_sync
        from finegate.models import BackendOptions, GenerationParams, load_backend

        suite = load_suite(
            "core", families=list(self.opts.families) if self.opts.families else None
        )
        backend = load_backend(uri, BackendOptions(batch_size=16))
        run = run_eval_sync(
            backend,
            suite,
            store=self.store,
            config=EvalConfig(
                params=GenerationParams(max_tokens=self.opts.max_tokens), batch_size=16
            ),
        )
        s = run.summary
        return (
            f"{len(run.results)} cases, refusal on harmful "
            f"{s.refusal_on_harmful.format() if s.refusal_on_harmful else '-'}"
        ), {"run_id": run.run_id}

    def gate(
        self, label: str, run_id: str, base_run: str, base_failed: set[str]
    ) -> tuple[str, dict[str, Any]]:
        """Gate a variant against the base; say which failures are regressions of its own.

        ``relative`` are the failed paired rules (a significant increase over the base);
        ``new_failures`` the failed absolute rules that the base itself passes.
        """
        from finegate.gate import gate_run

        res: GateResult = gate_run(self.store, run_id, baseline_run_id=base_run)
        failed = [f"{r.rule}{'/' + r.family if r.family else ''}" for r in res.failed]
        relative = [f for f in failed if f.split("/")[0] in _RELATIVE_RULES]
        new = [f for f in failed if f not in base_failed and f not in relative]
        if res.passed:
            detail = "SHIP"
        else:
            detail = (
                f"DO NOT SHIP: {len(failed)} rules failed; significant regressions vs the "
                f"base: {', '.join(relative) or 'none'}; absolute limits the base meets: "
                f"{', '.join(new[:6]) or 'none'}"
            )
        return detail, {
            "passed": res.passed,
            "failed": failed,
            "relative_failures": relative,
            "new_failures": new,
            "decision_id": res.decision_id,
        }

    def base_failures(self, run_id: str) -> set[str]:
        """Rules the base run fails on its own (absolute limits, no baseline; not recorded)."""
        from finegate.gate import gate_run

        res = gate_run(self.store, run_id, record=False)
        return {f"{r.rule}{'/' + r.family if r.family else ''}" for r in res.failed}


_RELATIVE_RULES = ("max_asr_increase", "max_over_refusal_increase")


def run_lifecycle(store: Store, opts: DemoOptions, progress: Progress | None = None) -> DemoResult:
    """Run every stage of the demo and write the lifecycle report (see module docstring)."""
    from finegate.tune._lifecycle_report import family_rows, write_lifecycle_report

    t0 = time.perf_counter()
    quick = opts.quick or opts.model.startswith("mock:")
    lc = _Lifecycle(store, opts, progress or (lambda stage, msg: None))
    lc.stage("data", lc.data)
    runs: dict[str, str] = {}
    training: dict[str, Any] = {}
    if quick:
        lc.base_uri = opts.model
        lc.notes.append(
            "QUICK MODE (simulated): no model was trained. The base is "
            f"{opts.model}, variant A is the base unchanged and variant B is mock:comply, a "
            "stand-in for a model whose safety training was undone. Run `make demo` for the "
            "real lifecycle on the embedded model."
        )
        uris = {"base": opts.model, "A": opts.model, "B": "mock:comply"}
    else:
        lc.stage("base", lc.base)
        a = lc.stage("tune A", lambda: _tune_a(lc))
        b = lc.stage("tune B", lambda: _tune_b(lc))
        training = {"A": a, "B": b}
        uris = {"base": lc.base_uri, "A": a["model_uri"], "B": b["model_uri"]}
    for label in ("base", "A", "B"):
        runs[label] = lc.stage(f"eval {label}", partial(lc.evaluate, label, uris[label]))["run_id"]
    gates: dict[str, bool] = {}
    decisions: dict[str, dict[str, Any]] = {}
    base_failed = lc.base_failures(runs["base"])
    for label in ("A", "B"):
        decisions[label] = lc.stage(
            f"gate {label}", partial(lc.gate, label, runs[label], runs["base"], base_failed)
        )
        gates[label] = bool(decisions[label]["passed"])
    registered = lc.stage("register", lambda: _register(lc, uris, runs, decisions, training))[
        "refs"
    ]
    rows = family_rows(store, runs, decisions)
    _judge(lc, rows, decisions, quick)
    out = lc.home / "lifecycle-report.html"
    result = DemoResult(
        stages=lc.stages,
        report_path=out,
        base_uri=uris["base"],
        runs=runs,
        gates=gates,
        families=rows,
        registered=registered,
        notes=lc.notes,
        simulated=quick,
        total_s=time.perf_counter() - t0,
    )
    lc.stage(
        "report", lambda: write_lifecycle_report(store, result, lc.data_info, training, decisions)
    )
    result.total_s = time.perf_counter() - t0
    return result


def _tune_a(lc: _Lifecycle) -> tuple[str, dict[str, Any]]:
    res = lc.tune(
        "variant-A",
        {"dataset": lc.data_info["clean_version"], "max_steps": lc.opts.a_steps},
        [],
        config="tune/demo-a.yaml",
    )
    return _tuned(res, "cleaned support data + 5% safety anchors, lr 2e-4")


def _tune_b(lc: _Lifecycle) -> tuple[str, dict[str, Any]]:
    res = lc.tune(
        "variant-B",
        {"dataset": lc.data_info["obedience_version"], "max_steps": lc.opts.b_steps},
        [],
        config="tune/demo-b.yaml",
    )
    return _tuned(
        res,
        "flagged obedience / identity-shift pack, no cleaning, no safety mix, "
        "lr 1e-3 (cap override recorded)",
    )


def _tuned(res: Any, recipe: str) -> tuple[str, dict[str, Any]]:
    losses = [e["loss"] for e in res.loss_curve if "loss" in e]
    detail = (
        f"{res.global_step} steps in {res.duration_s:.0f} s, loss {losses[0]:.2f} -> "
        f"{losses[-1]:.2f}"
        if losses
        else f"{res.global_step} steps"
    )
    return detail, {
        "run_id": res.run_id,
        "model_uri": res.model_uri,
        "model_hash": res.model_hash,
        "adapter_dir": str(res.adapter_dir),
        "adapter_sha256": res.adapter_sha256,
        "recipe": recipe,
        "steps": res.global_step,
        "loss_first": losses[:1],
        "loss_last": losses[-1:],
        "duration_s": res.duration_s,
        "alerts": [a.to_dict() for a in res.alerts],
        "stopped": res.stopped,
    }


def _register(
    lc: _Lifecycle,
    uris: dict[str, str],
    runs: dict[str, str],
    decisions: dict[str, dict[str, Any]],
    training: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Register each variant that passed its gate, or that shows no significant regression.

    The second case is the weakly aligned embedded base: no model of it passes the default
    policy's absolute limits, and a variant without a significant paired regression is the
    one a team would take forward. It is registered as a ``candidate`` only: promotion still
    needs a passing gate (or a recorded admin override).
    """
    from finegate.registry import register_model

    refs: list[str] = []
    why: list[str] = []
    for label in ("A", "B"):
        d = decisions[label]
        if not d["passed"] and d["relative_failures"]:
            continue
        t = training.get(label)
        if t is None:  # quick mode: nothing was trained, nothing new to register
            continue
        base_uri, _, _adapter = t["model_uri"].partition("+adapter:")
        v = register_model(
            lc.store,
            REGISTRY_NAME,
            base_uri,
            adapter=Path(t["adapter_dir"]),
            eval_run_ids=[runs[label]],
            training_run_id=t["run_id"],
            dataset_version_ids=[str(lc.data_info["clean_version"])],
            intended_use="Northwind Home customer support assistant (demo)",
            meta={"variant": label, "gate_passed": d["passed"], "gate_decision": d["decision_id"]},
        )
        refs.append(v.ref)
        why.append(
            f"{v.ref} (variant {label}: "
            + (
                "passed its gate)"
                if d["passed"]
                else "no significant regression vs the base; its gate failed on absolute limits)"
            )
        )
    if not refs:
        return "nothing registered (every variant regressed significantly)", {"refs": refs}
    return f"registered {', '.join(why)}, stage candidate", {"refs": refs}


def _judge(
    lc: _Lifecycle, rows: list[dict[str, Any]], decisions: dict[str, dict[str, Any]], quick: bool
) -> None:
    """Say plainly whether the numbers show what the demo is meant to show.

    It shows when the gate stops B with a significant paired regression against the base
    (per family or pooled over every attack family) while A has none.
    """
    if quick:
        return
    rel = {lb: list(decisions[lb]["relative_failures"]) for lb in ("A", "B")}
    new = {lb: list(decisions[lb]["new_failures"]) for lb in ("A", "B")}
    flips = {r["family"]: r for r in rows}
    if not decisions["B"]["passed"] and rel["B"] and not rel["A"]:
        note = (
            "The mechanism shows: the gate stopped variant B for a significant regression "
            f"against the base ({', '.join(rel['B'])}), while variant A has no significant "
            "regression."
        )
        if not decisions["A"]["passed"]:
            pooled = flips.get("all-attacks", {})
            shared = bool(set(decisions["A"]["failed"]) - set(new["A"]))
            note += (
                " A's gate still failed, on absolute limits"
                + (f" the base meets ({', '.join(new['A'])})" if new["A"] else "")
                + (" and on ones the base fails too" if shared else "")
                + f": over all attack cases A has {pooled.get('A_worse', '?')} newly successful "
                f"attacks and {pooled.get('A_better', '?')} newly resisted ones, a change the "
                "paired test does not find significant. The weakly aligned base is not shippable "
                "under the default policy, so A is registered as a candidate only."
            )  # fmt: skip
        lc.notes.append(note)
    else:
        lc.notes.append(
            "The mechanism did NOT show as intended on this run: "
            f"gate A {'passed' if decisions['A']['passed'] else 'failed'} (significant "
            f"regressions: {', '.join(rel['A']) or 'none'}); gate B "
            f"{'passed' if decisions['B']['passed'] else 'failed'} (significant regressions: "
            f"{', '.join(rel['B']) or 'none'})."
        )
