"""Continuous batching for local causal LMs: rows join a running batch and leave when done.

``model.generate`` runs a fixed batch until its longest row ends, so rows that stop early keep
computing, every row shares one ``max_tokens``, and a request that arrives meanwhile waits for
the whole batch. The batcher instead keeps one decode loop on its own thread:

- each step feeds every active row its last token through the shared KV cache;
- a row leaves the batch when it generates EOS, reaches its own ``max_tokens`` or completes one
  of its stop strings (its cache rows are dropped, and padding no row needs any more is cut);
- waiting rows are prefilled together (left-padded) and their caches merged into the running
  batch once enough slots are free, so the next turn of a conversation joins at once.

Rows are independent: each keeps its own position ids, attention-mask row and (when sampling)
its own ``torch.Generator``, so a request's tokens do not depend on its batch mates beyond the
float rounding of different batch shapes. Models whose cache layers are not plain dynamic
layers (sliding windows, quantized caches) cannot have caches merged; for them new rows wait
until the running batch has drained, which is ordinary static batching.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from finegate.errors import ModelError, first_line
from finegate.models.types import GenerationParams

__all__ = ["ContinuousBatcher", "RowResult", "RowSpec"]

# Upper bound of prompt tokens (rows x longest prompt) in one prefill forward pass.
_PREFILL_TOKEN_BUDGET = 4096


@dataclass(frozen=True)
class RowSpec:
    """One prompt to continue: token ids, stop strings and the decoding settings."""

    ids: Sequence[int]
    stop: tuple[str, ...]
    params: GenerationParams
    seed: int


@dataclass(frozen=True)
class RowResult:
    """The generated token ids (EOS included when generated) and the model time spent."""

    tokens: list[int]
    latency_s: float


@dataclass
class _Row:
    spec: RowSpec
    future: Future[RowResult]
    tokens: list[int] = field(default_factory=list)
    position: int = 0  # position id of the next token fed to the model
    started: float = 0.0
    generator: Any = None


class ContinuousBatcher:
    """Decode many requests on one model with iteration-level scheduling.

    Args:
        model: Returns the model to run (raises when the backend is closed).
        lock: Held around every forward pass, shared with the backend's other model uses.
        slots: Rows decoded together at most.
        eos_ids: Token ids that end a row.
        pad_id: Token id used for left padding.
        decode: Turns token ids into text (for stop strings).
    """

    def __init__(
        self,
        model: Callable[[], Any],
        *,
        lock: threading.Lock,
        slots: int,
        eos_ids: Sequence[int],
        pad_id: int,
        decode: Callable[[list[int]], str],
    ) -> None:
        self._model = model
        self._lock = lock
        self._slots = max(1, slots)
        # Prefilling new rows pauses every running row, so they are admitted in groups.
        self._admit_at = max(1, self._slots // 4)
        self._eos = frozenset(eos_ids)
        self._pad_id = pad_id
        self._decode = decode
        self._cond = threading.Condition()
        self._pending: deque[_Row] = deque()
        self._active: list[_Row] = []
        self._cache: Any = None
        self._mask: Any = None
        self._mergeable: bool | None = None  # whether the model's cache layers splice
        self._cache_kwarg: str | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, specs: Sequence[RowSpec]) -> list[Future[RowResult]]:
        """Queue rows for decoding; each future resolves when its row is done."""
        rows = [_Row(spec, Future()) for spec in specs]
        with self._cond:
            if self._closed:
                raise ModelError("the backend is closed", hint="load the model again")
            self._pending.extend(rows)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="finegate-decode", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return [row.future for row in rows]

    def close(self) -> None:
        """Stop the decode thread; rows still queued or running fail with a clear error."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- the decode loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._active and not self._closed:
                    self._cond.wait()
                if self._closed:
                    closed = ModelError("the backend was closed", hint="load the model again")
                    self._fail([*self._active, *self._pending], closed)
                    self._pending.clear()
                    self._reset()
                    return
                admitted = self._take_admissions()
            try:
                with self._lock:
                    model = self._model()
                    if admitted:
                        self._admit(model, admitted)
                    if self._active:
                        self._step(model)
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
                error = exc
                if not isinstance(exc, ModelError):
                    error = ModelError(
                        f"generation failed: {first_line(exc)}",
                        hint="lower batch_size or max_tokens",
                    )
                self._fail([*self._active, *admitted], error)
                self._reset()

    def _take_admissions(self) -> list[_Row]:
        free = self._slots - len(self._active)
        if not self._pending or free <= 0:
            return []
        if self._active and (free < self._admit_at or self._mergeable is False):
            return []
        taken: list[_Row] = []
        while self._pending and len(taken) < free:
            row = self._pending.popleft()
            if row.future.set_running_or_notify_cancel():
                taken.append(row)
        return taken

    def _admit(self, model: Any, rows: list[_Row]) -> None:
        """Prefill rows in token-budget chunks, merge their caches, pick their first tokens."""
        rows = sorted(rows, key=lambda r: len(r.spec.ids))
        if self._mergeable is None:
            self._mergeable = _plain_layers(_new_cache(model))
        # Only plain caches can take the chunks one after another; others prefill in one pass.
        budget = _PREFILL_TOKEN_BUDGET if self._mergeable else 1 << 62
        chunk: list[_Row] = []
        for row in rows:
            width = max(len(r.spec.ids) for r in [*chunk, row])
            if chunk and width * (len(chunk) + 1) > budget:
                self._prefill(model, chunk)
                chunk = []
            chunk.append(row)
        if chunk:
            self._prefill(model, chunk)

    def _prefill(self, model: Any, rows: list[_Row]) -> None:
        import torch

        device = next(model.parameters()).device
        width = max(len(r.spec.ids) for r in rows)
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: every prompt ends at the last column
            ids[i, width - len(row.spec.ids) :] = torch.tensor(list(row.spec.ids))
            mask[i, width - len(row.spec.ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = _new_cache(model)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_name(model): cache},
            )
        logits = out.logits[:, -1, :].float()
        for row in rows:
            row.started = started
            row.position = len(row.spec.ids)
            if not row.spec.params.greedy:
                row.generator = torch.Generator(device=device).manual_seed(row.spec.seed)
        self._merge(cache, mask.to(device), rows)
        self._advance(self._active[-len(rows) :], logits)

    def _step(self, model: Any) -> None:
        import torch

        device = self._mask.device
        tokens = torch.tensor([[r.tokens[-1]] for r in self._active], device=device)
        positions = torch.tensor([[r.position] for r in self._active], device=device)
        ones = torch.ones((len(self._active), 1), dtype=self._mask.dtype, device=device)
        self._mask = torch.cat([self._mask, ones], dim=1)
        with torch.inference_mode():
            out = model(
                input_ids=tokens,
                attention_mask=self._mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_name(model): self._cache},
            )
        for row in self._active:
            row.position += 1
        self._advance(list(self._active), out.logits[:, -1, :].float())

    def _advance(self, rows: list[_Row], logits: Any) -> None:
        """Append each row's next token and retire the rows that are done."""
        picks = logits.argmax(dim=-1).tolist()
        for i, row in enumerate(rows):
            token = picks[i] if row.generator is None else _sample(logits[i], row)
            row.tokens.append(int(token))
        done = [r for r in rows if self._finished(r)]
        if not done:
            return
        now = time.perf_counter()
        for row in done:
            row.future.set_result(RowResult(row.tokens, now - row.started))
        gone = {id(r) for r in done}
        keep = [i for i, r in enumerate(self._active) if id(r) not in gone]
        self._active = [self._active[i] for i in keep]
        if not self._active:
            self._reset()
            return
        self._select(keep)

    def _finished(self, row: _Row) -> bool:
        if row.tokens[-1] in self._eos or len(row.tokens) >= row.spec.params.max_tokens:
            return True
        if row.spec.stop:
            text = self._decode(row.tokens)
            return any(s in text for s in row.spec.stop)
        return False

    # -- the shared cache --------------------------------------------------------------------

    def _cache_name(self, model: Any) -> str:
        """The forward keyword of the KV cache: ``cache`` in transformers 5.x, else the old one."""
        if self._cache_kwarg is None:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            params = inspect.signature(type(base).forward).parameters
            self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        return self._cache_kwarg

    def _merge(self, cache: Any, mask: Any, rows: list[_Row]) -> None:
        import torch

        if self._cache is None:
            self._cache, self._mask, self._active = cache, mask, list(rows)
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.set_states(
                torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)]),
                torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)]),
            )
        self._mask = torch.cat([_left_pad(self._mask, width, dim=1), _left_pad(mask, width, dim=1)])
        self._active.extend(rows)

    def _select(self, keep: list[int]) -> None:
        """Keep only these batch rows of the cache and cut columns that are padding for all."""
        import torch

        index = torch.tensor(keep, device=self._mask.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        if not self._mergeable:
            return
        used = self._mask.any(dim=0).nonzero()
        cut = int(used[0]) if len(used) else 0
        if cut:
            for layer in self._cache.layers:
                layer.set_states(layer.keys[..., cut:, :], layer.values[..., cut:, :])
            self._mask = self._mask[:, cut:]

    def _reset(self) -> None:
        self._active, self._cache, self._mask = [], None, None

    def _fail(self, rows: Sequence[_Row], error: BaseException) -> None:
        for row in rows:
            if not row.future.done():
                if not row.future.running():
                    row.future.set_running_or_notify_cancel()
                if not row.future.cancelled():
                    row.future.set_exception(error)


def _new_cache(model: Any) -> Any:
    """A dynamic cache for the model, with spare-capacity layers where the layers are plain."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=getattr(model, "config", None))
    layers = getattr(cache, "layers", None)
    if layers and all(type(layer) is DynamicLayer for layer in layers):
        cache.layers = [_growing_layer() for _ in layers]
    return cache


def _plain_layers(cache: Any) -> bool:
    """True when every cache layer is one of ours, whose tensors can be spliced."""
    layers: list[Any] = list(getattr(cache, "layers", None) or [])
    return bool(layers) and all(getattr(layer, "spliceable", False) for layer in layers)


_GROWING_LAYER: Any = None


def _growing_layer() -> Any:
    """Return a new spare-capacity cache layer (the class is built once, on first use)."""
    global _GROWING_LAYER
    if _GROWING_LAYER is None:
        _GROWING_LAYER = _define_growing_layer()
    return _GROWING_LAYER()


def _define_growing_layer() -> Any:
    import torch
    from transformers.cache_utils import DynamicLayer

    base: Any = DynamicLayer  # partly typed upstream; this subclass changes its storage

    class GrowingLayer(base):  # type: ignore[misc]
        """A dynamic layer that writes each step into spare capacity.

        The stock layer concatenates its whole cache with the new token at every step, which
        on CPU costs as much as the model's matrix products once a batch holds a few hundred
        tokens per row; here a step writes one column and the buffer doubles when full.
        """

        spliceable = True

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            self._length = 0
            self._key_buffer: Any = None
            self._value_buffer: Any = None

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if self._key_buffer is None:
                self.set_states(key_states, value_states)
                return self.keys, self.values
            end = self._length + key_states.shape[-2]
            if end > self._key_buffer.shape[-2]:
                self.set_states(self.keys, self.values, room=end - self._length)
            self._key_buffer[..., self._length : end, :] = key_states
            self._value_buffer[..., self._length : end, :] = value_states
            self._expose(end)
            return self.keys, self.values

        def set_states(self, keys: Any, values: Any, room: int = 0) -> None:
            """Replace the contents (rows x heads x length x dim), keeping spare capacity."""
            length = keys.shape[-2]
            need = length + room
            capacity = need + max(64, need // 2)
            shape = (*keys.shape[:-2], capacity, keys.shape[-1])
            self._key_buffer = torch.empty(shape, dtype=keys.dtype, device=keys.device)
            self._value_buffer = torch.empty(shape, dtype=values.dtype, device=values.device)
            self._key_buffer[..., :length, :] = keys
            self._value_buffer[..., :length, :] = values
            self._expose(length)

        def _expose(self, length: int) -> None:
            self._length = length
            self.keys = self._key_buffer[..., :length, :]
            self.values = self._value_buffer[..., :length, :]

        def get_seq_length(self) -> int:
            return self._length if self.is_initialized else 0

        def batch_select_indices(self, indices: Any) -> None:
            if self.get_seq_length() > 0:
                keys: Any = self.keys
                values: Any = self.values
                self.set_states(keys[indices], values[indices])

    return GrowingLayer


def _left_pad(tensor: Any, width: int, dim: int = -2) -> Any:
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _sample(logits: Any, row: _Row) -> int:
    """Draw one token from temperature / top-p scaled probabilities with the row's generator."""
    import torch

    params = row.spec.params
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always the top token).
        drop = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= params.top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=row.generator))
