"""The real embedded model on a few core cases: recorded, re-run from the cache, same over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.serving import uvicorn_thread

from finegate.evals import EvalConfig, load_suite, run_eval
from finegate.models import BackendOptions, GenerationParams, load_backend
from finegate.store import Store

pytestmark = pytest.mark.slow

CASE_FAMILIES = ("leakage", "harmful-requests", "over-refusal", "task-fit")


async def test_embedded_eval_cache_and_http_parity(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("uvicorn")
    from finegate.models.server import ServerSettings, create_app

    core = load_suite("core")
    cases = [next(c for c in core.cases if c.family == f) for f in CASE_FAMILIES]
    suite = core.model_copy(update={"cases": cases})
    store = Store(f"sqlite:///{tmp_path / 'fg.db'}", home=tmp_path)
    config = EvalConfig(params=GenerationParams(max_tokens=48), batch_size=4)
    local = load_backend("hf:embedded", BackendOptions(batch_size=4))
    first = await run_eval(local, suite, store=store, config=config)
    assert [r.verdict for r in first.results if r.verdict == "error"] == []
    assert first.model_calls >= len(cases) and first.cache_hits == 0
    assert all(r.output.strip() or r.tool_calls for r in first.results)
    assert all(r.completion_tokens > 0 for r in first.results)

    start = time.perf_counter()
    second = await run_eval(local, suite, store=store, config=config)
    assert time.perf_counter() - start < 5
    assert second.model_calls == 0
    assert [(r.case_id, r.verdict, r.output) for r in second.results] == [
        (r.case_id, r.verdict, r.output) for r in first.results
    ]

    # The same model behind serve-model, over a real socket.
    app = create_app(local, ServerSettings(model_name="emb"))
    with uvicorn_thread(app, lifespan="off") as (port, _):
        remote = load_backend(
            f"openai:http://127.0.0.1:{port}/v1#emb",
            BackendOptions(concurrency=4, api_key_env=None, timeout_s=600),
        )
        over_http = await run_eval(
            remote,
            suite,
            store=store,
            config=EvalConfig(params=config.params, batch_size=1, concurrency=4),
        )
        await remote.aclose()
    assert over_http.model_calls >= len(cases)
    assert {r.case_id: r.verdict for r in over_http.results} == {
        r.case_id: r.verdict for r in first.results
    }
    await local.aclose()
    store.close()
