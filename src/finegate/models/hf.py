"""``hf:`` — local transformers models: ``hf:embedded``, ``hf:PATH``, ``...+adapter:PATH``.

Generation is continuously batched (``finegate.models.hf_batching``): every request becomes a
row of one decode loop that admits new rows as others finish, so rows with different
``max_tokens`` or stop strings share a batch, a short answer does not wait for the longest, and
concurrent callers (the eval runner's workers, ``serve-model``'s requests) fill the same batch.
Greedy decoding is the default. Sampling (``temperature > 0``) draws every row from its own
``torch.Generator`` seeded by the request (``params.seed``, or a seed derived from the request
hash when none is given), so a request's output does not depend on what else shares its batch
and re-running it gives the same text.

torch, transformers and peft are imported inside functions: ``import finegate.models.hf`` stays
cheap (the plugin registry imports it on every CLI start).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finegate.errors import ModelError, first_line
from finegate.models.embedded import ensure_embedded_dir, file_sha256, quiet_transformers
from finegate.models.hf_batching import ContinuousBatcher, RowSpec
from finegate.models.hf_tools import json_or_text, parse_tool_calls, tool_call_text, tools_in_system
from finegate.models.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ModelBackend,
    ModelIdentity,
    ToolCall,
)
from finegate.models.uri import BackendOptions
from finegate.plugins import register

__all__ = ["EMBEDDED", "HFBackend", "hf_factory", "load_hf_model", "parse_hf_spec"]

EMBEDDED = "embedded"
_ADAPTER_SEP = "+adapter:"
_LOCAL_HINT = "install finegate with the 'local' extra (torch, transformers, peft)"
# Files whose bytes define a model's behaviour; tokenizer files are left out on purpose so a
# re-saved tokenizer (new transformers version, same vocabulary) keeps the identity stable.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CONFIG_FILES = ("config.json", "adapter_config.json")
# Upper bound of tokens per forward pass in token_logprobs: the float32 logits tensor is
# tokens x vocabulary, so this keeps it near 400 MB for a 50k vocabulary.
_LOGPROB_TOKEN_BUDGET = 2048


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """Split ``BASE[+adapter:PATH]`` into the base (``embedded`` or a path) and the adapter.

    The last ``+adapter:`` wins, so a base path may itself contain ``+``.

    Raises:
        ModelError: for an empty base or adapter part.
    """
    base, sep, adapter = spec.rpartition(_ADAPTER_SEP)
    if not sep:
        base, adapter = spec, ""
    if not base.strip():
        raise ModelError(
            f"hf: URI {('hf:' + spec)!r} names no model",
            hint="use hf:embedded or hf:/path/to/model[+adapter:/path/to/adapter]",
        )
    if sep and not adapter.strip():
        raise ModelError(
            f"hf: URI {('hf:' + spec)!r} has an empty adapter path",
            hint="write +adapter:/path/to/adapter or leave the suffix out",
        )
    return base.strip(), (adapter.strip() or None)


def _weights_sha256(directory: Path) -> str:
    """Hash a model or adapter directory: its weight files and config, in name order.

    Only top-level files count: that is what ``from_pretrained`` loads, and a training run's
    ``checkpoint-*/`` subdirectories must not change (or slow down) the identity.
    """
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (p.name in _CONFIG_FILES or p.suffix in _WEIGHT_SUFFIXES)
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(directory).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _resolve_device_dtype(options: BackendOptions) -> tuple[str, Any]:
    """Pick the device and dtype: ``auto`` is cuda + bfloat16 when available, else cpu + fp32."""
    import torch

    device = options.device.lower()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            "device 'cuda' was requested but torch sees no CUDA GPU", hint="use device auto or cpu"
        )
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    dtype_name = options.dtype.lower()
    if dtype_name == "auto":
        # bf16 halves memory and is fast on GPUs; on CPU float32 is both faster and exact.
        return device, (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    if dtype_name not in names:
        raise ModelError(
            f"unknown dtype {options.dtype!r}", hint="use auto, float32, bfloat16 or float16"
        )
    return device, names[dtype_name]


def _configure_threads(options: BackendOptions) -> None:
    """Set torch's CPU thread count (process-wide) once, from options, env or CPU affinity.

    torch defaults to the machine's physical core count, which oversubscribes a container or
    a ``taskset`` limited to fewer cores; the CPUs this process may run on is the better bound.
    """
    import torch

    wanted = options.extra.get("threads") or os.environ.get("FINEGATE_TORCH_THREADS")
    if wanted:
        try:
            n = int(wanted)
        except ValueError:
            raise ModelError(
                f"thread count {wanted!r} is not a whole number",
                hint="set FINEGATE_TORCH_THREADS or extra['threads'] to e.g. 4",
            ) from None
    else:
        try:
            n = min(len(os.sched_getaffinity(0)), torch.get_num_threads())
        except AttributeError:  # macOS and Windows have no sched_getaffinity.
            return
    if n > 0 and n != torch.get_num_threads():
        torch.set_num_threads(n)


def _prefer_passive_omp() -> None:
    """Make idle OpenMP threads sleep instead of spin, unless the user chose otherwise.

    Small models run many short parallel regions; with the default active wait, a machine
    shared with other processes stalls each region on a descheduled spinning thread. On a busy
    2-core machine this made a batch of 3 prompts 4-5x slower than with ``PASSIVE``. OpenMP reads
    the variable when torch loads it, so this only helps when torch is not imported yet.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _model_dir_for(base: str) -> tuple[Path, str]:
    """Return the directory to load and its content hash, validating a user path."""
    if base == EMBEDDED:
        return ensure_embedded_dir()
    path = Path(base).expanduser()
    if not path.exists():
        raise ModelError(
            f"model path {str(path)!r} does not exist",
            hint="use hf:embedded or the path of a local transformers model directory",
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelError(
            f"{str(path)!r} is not a transformers model directory (no config.json)",
            hint="point hf: at a directory written by save_pretrained",
        )
    return path, _weights_sha256(path)


def load_hf_model(
    spec: str, options: BackendOptions | None = None, *, adapter_trainable: bool = False
) -> tuple[Any, Any, ModelIdentity]:
    """Load a causal LM, its tokenizer and its identity from an ``hf:`` spec (without ``hf:``).

    Used by :class:`HFBackend` and by the fine-tuning stage, so both see the same weights.

    Args:
        spec: ``embedded`` or a model directory, optionally followed by ``+adapter:PATH``.
        options: Device, dtype and thread settings; defaults to :class:`BackendOptions`.
        adapter_trainable: Load the PEFT adapter with trainable weights (for further tuning).

    Returns:
        ``(model, tokenizer, identity)``; the model is on the chosen device in eval mode and the
        tokenizer has a pad token.

    Raises:
        ModelError: for a missing path, a directory that is not a model, a missing embedded
            package, a bad adapter, or missing torch/transformers/peft.
    """
    options = options or BackendOptions()
    base, adapter = parse_hf_spec(spec)
    adapter_path: Path | None = None
    if adapter is not None:
        adapter_path = Path(adapter).expanduser()
        if not (adapter_path / "adapter_config.json").is_file():
            what = "does not exist" if not adapter_path.exists() else "has no adapter_config.json"
            raise ModelError(
                f"adapter path {str(adapter_path)!r} {what}",
                hint="pass a directory written by a PEFT model's save_pretrained",
            )
    _prefer_passive_omp()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ModuleNotFoundError as exc:
        raise ModelError(f"the hf: backend needs {exc.name!r}", hint=_LOCAL_HINT) from exc
    quiet_transformers()

    model_dir, base_hash = _model_dir_for(base)
    device, dtype = _resolve_device_dtype(options)
    if device == "cpu":
        _configure_threads(options)
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
        model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"could not load the transformers model in {str(model_dir)!r}: {first_line(exc)}",
            hint="check that the directory holds a causal LM saved with save_pretrained",
        ) from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        # Left-padded batches need a pad id; the padded positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    content_hash, details = (
        base_hash,
        {
            "base": base,
            "model_dir": str(model_dir),
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
        },
    )
    if adapter_path is not None:
        model = _apply_adapter(model, adapter_path, trainable=adapter_trainable)
        adapter_hash = _weights_sha256(adapter_path)
        # Combine as text so the result is stable and the parts stay auditable in details.
        content_hash = hashlib.sha256(f"{base_hash}+adapter:{adapter_hash}".encode()).hexdigest()
        details.update(adapter=str(adapter_path), base_hash=base_hash, adapter_hash=adapter_hash)
    model.to(device)
    model.eval()
    return model, tokenizer, ModelIdentity(f"hf:{spec}", "hf", content_hash, details)


def _apply_adapter(model: Any, path: Path, *, trainable: bool) -> Any:
    try:
        from peft import PeftModel
    except ModuleNotFoundError as exc:
        raise ModelError("adapters need the 'peft' package", hint=_LOCAL_HINT) from exc
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(
            f"could not apply the adapter in {str(path)!r}: {first_line(exc)}",
            hint="the adapter must be a PEFT adapter trained for this base model",
        ) from exc


@dataclass
class _Prepared:
    """One request after rendering: the request, its prompt token ids and stop strings."""

    request: ChatRequest
    ids: list[int]
    stop: tuple[str, ...]


class HFBackend:
    """A local transformers model answering batches of chat requests (see module docstring)."""

    def __init__(self, spec: str, options: BackendOptions | None = None) -> None:
        self._options = options or BackendOptions()
        if self._options.batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {self._options.batch_size}")
        self._model, self._tokenizer, self._identity = load_hf_model(spec, self._options)
        from transformers import GenerationConfig

        config_cls: Any = GenerationConfig  # untyped constructor in transformers' stubs
        gen = getattr(self._model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        eos_ids = {*(eos if isinstance(eos, list) else [eos]), self._tokenizer.eos_token_id}
        self._eos_ids = sorted(i for i in eos_ids if isinstance(i, int))
        if self._tokenizer.pad_token_id is None:
            raise ModelError(
                f"the tokenizer of {self._identity.uri} has no pad or EOS token",
                hint="set pad_token in its tokenizer_config.json",
            )
        self._pad_id = int(self._tokenizer.pad_token_id)
        # Our GenerationParams are the whole decoding contract: a model's own sampling defaults
        # (temperature, repetition penalty, ...) must not leak into "greedy".
        self._model.generation_config = config_cls(
            bos_token_id=getattr(gen, "bos_token_id", None),
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
        )
        template = self._tokenizer.chat_template or ""
        self._template_tools = "tools" in template
        self._template_tool_calls = "tool_calls" in template
        self._context = int(getattr(self._model.config, "max_position_embeddings", 0) or 0)
        self._lock = threading.Lock()
        # Fast tokenizers must not be used from two threads at once; the decode thread needs
        # it for stop strings while the event loop renders new requests.
        self._tokenizer_lock = threading.Lock()
        self._batcher = ContinuousBatcher(
            lambda: self._require()[0],
            lock=self._lock,
            slots=self._options.batch_size,
            eos_ids=self._eos_ids,
            pad_id=self._pad_id,
            decode=self._decode_locked,
        )

    # -- the ModelBackend contract -----------------------------------------------------------

    @property
    def batch_slots(self) -> int:
        """Rows decoded together; callers keep at least this many requests in flight.

        Requests sent one per call, concurrently, each join the running batch as soon as a
        slot frees, rather than waiting for a whole batch to end (the eval runner reads this).
        """
        return self._options.batch_size

    def identity(self) -> ModelIdentity:
        """Return the URI and the content hash of the weights (and adapter)."""
        return self._identity

    @property
    def model(self) -> Any:
        """The underlying transformers (or PEFT) model."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The underlying tokenizer."""
        return self._tokenizer

    async def aclose(self) -> None:
        """Drop the model so its memory can be reclaimed; requests still running fail."""
        # Blocking here only waits for the decode step in progress; acquiring in a worker
        # thread instead could leak the lock if this coroutine were cancelled while waiting.
        self._batcher.close()
        with self._lock:
            self._model = None
            self._tokenizer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ModuleNotFoundError:
            pass

    async def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer requests; they join the running batch and each returns when it is done."""
        if not requests:
            return []
        with self._tokenizer_lock:
            self._require()
            prepared = [self._prepare(request) for request in requests]
        rows = [p for p in prepared if isinstance(p, _Prepared)]
        futures = self._batcher.submit(
            [
                RowSpec(
                    ids=p.ids, stop=p.stop, params=p.request.params, seed=_sampling_seed(p.request)
                )
                for p in rows
            ]
        )
        done = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        answers = iter(done)
        with self._tokenizer_lock:
            return [
                p
                if isinstance(p, ChatResponse)
                else self._finish(p, (r := next(answers)).tokens, r.latency_s)
                for p in prepared
            ]

    def token_logprobs(self, texts: Sequence[str]) -> list[list[float]]:
        """Return, per text, each token's log-probability given the tokens before it.

        When the tokenizer has a BOS token it is prepended, so every token of the text is
        scored; otherwise the first token has no context and is left out.
        """
        import torch

        with self._lock:
            model, tok = self._require()
            bos = tok.bos_token_id
            prefix = [int(bos)] if bos is not None else []
            with self._tokenizer_lock:
                seqs = [prefix + list(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
            out: list[list[float]] = [[] for _ in texts]
            order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
            device = next(model.parameters()).device
            for chunk in _token_budget_chunks(order, seqs, self._options.batch_size):
                width = max(len(seqs[i]) for i in chunk)
                if width < 2:
                    continue  # Nothing to score: no token has a predecessor.
                ids = torch.full((len(chunk), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                    mask[row, : len(seqs[i])] = 1
                with torch.inference_mode():
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                    picked = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
                for row, i in enumerate(chunk):
                    out[i] = picked[row, : len(seqs[i]) - 1].cpu().tolist()
            return out

    # -- generation --------------------------------------------------------------------------

    def _decode_locked(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return str(self._require()[1].decode(ids, skip_special_tokens=True))

    def _require(self) -> tuple[Any, Any]:
        if self._model is None or self._tokenizer is None:
            raise ModelError(f"backend {self._identity.uri} is closed", hint="load the model again")
        return self._model, self._tokenizer

    def _prepare(self, request: ChatRequest) -> _Prepared | ChatResponse:
        """Render and tokenize one request, or return its error response."""
        uri = self._identity.uri
        for message in request.messages:
            try:
                message.content.encode("utf-8")
            except UnicodeEncodeError:
                return ChatResponse(
                    "", "error", model=uri, error="prompt is not valid UTF-8 text; decode it first"
                )
        if request.params.max_tokens < 1:
            return ChatResponse("", "error", model=uri, error="max_tokens must be at least 1")
        ids = list(self._tokenizer(self._render(request), add_special_tokens=False)["input_ids"])
        if self._context and len(ids) + request.params.max_tokens > self._context:
            return ChatResponse(
                "",
                "error",
                model=uri,
                prompt_tokens=len(ids),
                error=(
                    f"prompt ({len(ids)} tokens) plus max_tokens ({request.params.max_tokens}) "
                    f"exceeds the model's context of {self._context} tokens"
                ),
            )
        stop = tuple(s for s in request.params.stop if s)  # "" would match everywhere
        return _Prepared(request, ids, stop)

    def _render(self, request: ChatRequest) -> str:
        """Apply the chat template; tools go to the template or, if it has none, the system."""
        messages = [self._message_dict(m) for m in request.messages]
        tools = [{"type": "function", "function": t.to_dict()} for t in request.tools]
        if tools and not self._template_tools:
            messages = tools_in_system(messages, request.tools)
        if not self._tokenizer.chat_template:
            # A base model without a template: a plain transcript is the honest fallback.
            return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        kwargs: dict[str, Any] = {"tools": tools} if tools and self._template_tools else {}
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **kwargs
        )
        return str(text)

    def _message_dict(self, message: ChatMessage) -> dict[str, Any]:
        out: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.name is not None:
            out["name"] = message.name
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        if message.tool_calls:
            if self._template_tool_calls:
                out["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json_or_text(c.arguments)},
                    }
                    for c in message.tool_calls
                ]
            else:
                # Keep earlier calls visible to a template that cannot render them, in the same
                # <tool_call> form the model is asked to answer in.
                out["content"] = "\n".join(
                    [message.content, *(tool_call_text(c) for c in message.tool_calls)]
                ).strip()
        return out

    def _finish(
        self,
        prepared: _Prepared,
        row: list[int],
        latency: float,
    ) -> ChatResponse:
        """Turn one row of generated ids into a response (text, finish reason, counts)."""
        ends = {*self._eos_ids, self._pad_id}
        k = next((j for j, t in enumerate(row) if t in ends), len(row))
        text = str(self._tokenizer.decode(row[:k], skip_special_tokens=True))
        cut = min((i for i in (text.find(s) for s in prepared.stop) if i >= 0), default=-1)
        finish: FinishReason
        if cut >= 0:
            # Decoding stopped right after the token completing the stop string, so k counts
            # only generated tokens.
            text, finish, count = text[:cut], "stop", k
        elif k < len(row) and row[k] in self._eos_ids:
            finish, count = "stop", k + 1  # The EOS token was generated, so it is counted.
        else:
            finish, count = "length", min(k, prepared.request.params.max_tokens)
        calls: tuple[ToolCall, ...] = ()
        if prepared.request.tools:
            text, calls = parse_tool_calls(text)
            if calls:
                finish = "tool_calls"
        return ChatResponse(
            text=text,
            finish_reason=finish,
            tool_calls=calls,
            prompt_tokens=len(prepared.ids),
            completion_tokens=count,
            latency_s=latency,
            model=self._identity.uri,
        )


def _token_budget_chunks(
    order: list[int], seqs: list[list[int]], batch_size: int
) -> list[list[int]]:
    """Group indices (shortest first) so each forward stays under the token budget."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([len(seqs[j]) for j in current] + [len(seqs[i])])
        if current and (
            len(current) >= batch_size or longest * (len(current) + 1) > _LOGPROB_TOKEN_BUDGET
        ):
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


def _sampling_seed(request: ChatRequest) -> int:
    if request.params.seed is not None:
        return int(request.params.seed)
    # No seed: derive one from the request so identical requests agree, as the call store does.
    return int(request.request_hash()[:15], 16)


@register("backend", "hf")
def hf_factory(spec: str, options: BackendOptions) -> ModelBackend:
    """Build an :class:`HFBackend` from ``hf:`` URI text (``embedded`` or a path)."""
    return HFBackend(spec, options)
