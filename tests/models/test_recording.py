"""Every call is recorded; a repeat to the same model is answered from the store."""

from __future__ import annotations

from finegate.models import ChatRequest, GenerationParams, generate_sync, load_backend
from finegate.models.mock import MockBackend
from finegate.models.recording import RecordingBackend
from finegate.store import Store, count_calls


def test_rerun_is_served_from_store(store: Store) -> None:
    inner = load_backend("mock:echo")
    assert isinstance(inner, MockBackend)
    prompts = [ChatRequest.from_prompt(f"prompt {i}") for i in range(5)]
    first = generate_sync(RecordingBackend(inner, store), prompts)
    assert inner.calls == 5
    # A new wrapper (as in a new process) over the same model: nothing reaches the backend.
    again_backend = RecordingBackend(inner, store)
    again = generate_sync(again_backend, prompts)
    assert inner.calls == 5
    assert again_backend.hits == 5 and all(r.cached for r in again)
    assert [r.text for r in again] == [r.text for r in first]
    assert count_calls(store) == 5


def test_no_cache_always_calls(store: Store) -> None:
    inner = load_backend("mock:echo")
    assert isinstance(inner, MockBackend)
    req = [ChatRequest.from_prompt("same")]
    generate_sync(RecordingBackend(inner, store), req)
    generate_sync(RecordingBackend(inner, store, use_cache=False), req)
    assert inner.calls == 2
    assert count_calls(store) == 2


def test_cache_is_per_model_and_per_request(store: Store) -> None:
    echo, refuse = load_backend("mock:echo"), load_backend("mock:refuse")
    assert isinstance(echo, MockBackend) and isinstance(refuse, MockBackend)
    req = ChatRequest.from_prompt("q")
    generate_sync(RecordingBackend(echo, store), [req])
    (resp,) = generate_sync(RecordingBackend(refuse, store), [req])
    assert refuse.calls == 1 and not resp.cached
    longer = ChatRequest.from_prompt("q", params=GenerationParams(max_tokens=7))
    generate_sync(RecordingBackend(echo, store), [longer])
    assert echo.calls == 2


def test_unseeded_sampling_is_never_cached(store: Store) -> None:
    inner = load_backend("mock:echo")
    assert isinstance(inner, MockBackend)
    sampled = [ChatRequest.from_prompt("s", params=GenerationParams(temperature=0.8))]
    seeded = [ChatRequest.from_prompt("s", params=GenerationParams(temperature=0.8, seed=3))]
    for _ in range(2):
        generate_sync(RecordingBackend(inner, store), sampled)
        generate_sync(RecordingBackend(inner, store), seeded)
    assert inner.calls == 3  # two unseeded calls, one seeded call, one seeded cache hit


def test_calls_are_linked_to_runs(store: Store) -> None:
    rid = store.start_run("eval")
    generate_sync(
        RecordingBackend(load_backend("mock:echo"), store, run_id=rid),
        [ChatRequest.from_prompt("a"), ChatRequest.from_prompt("b")],
    )
    assert count_calls(store, run_id=rid) == 2


def test_cache_key_separates_numerics() -> None:
    from finegate.models import ModelIdentity

    cpu = ModelIdentity("hf:embedded", "hf", "abc", {"device": "cpu", "dtype": "float32"})
    gpu = ModelIdentity("hf:embedded", "hf", "abc", {"device": "cuda", "dtype": "bfloat16"})
    remote = ModelIdentity("openai:x#m", "openai", "abc")
    assert cpu.cache_key() != gpu.cache_key()
    assert remote.cache_key() == "abc"
