"""The continuous batcher's cache layer holds exactly what concatenating would."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.cache_utils import DynamicLayer  # noqa: E402

from finegate.models.hf_batching import _growing_layer, _left_pad  # noqa: E402


def _states(rows: int, length: int, seed: int) -> tuple[object, object]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(rows, 3, length, 8, generator=gen),
        torch.randn(rows, 3, length, 8, generator=gen),
    )


def test_growing_layer_matches_the_stock_layer_step_by_step() -> None:
    ours, stock = _growing_layer(), DynamicLayer()
    for step, length in enumerate([70, 1, 1, 40, 1, 100]):  # prefill, steps, and two regrowths
        keys, values = _states(2, length, step)
        got = ours.update(keys, values)
        want = stock.update(keys, values)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert ours.get_seq_length() == stock.get_seq_length()
    # Growth keeps spare room, so a decode step writes one column instead of copying the cache.
    assert ours._key_buffer.shape[-2] > ours.get_seq_length()


def test_selecting_rows_and_cutting_padding_keep_the_contents() -> None:
    layer = _growing_layer()
    keys, values = _states(3, 20, 1)
    layer.update(keys, values)
    layer.batch_select_indices(torch.tensor([0, 2]))
    assert torch.equal(layer.keys, keys[[0, 2]]) and torch.equal(layer.values, values[[0, 2]])
    layer.set_states(layer.keys[..., 5:, :], layer.values[..., 5:, :])
    assert layer.get_seq_length() == 15 and torch.equal(layer.keys, keys[[0, 2]][..., 5:, :])
    step_k, step_v = _states(2, 1, 2)
    out_k, _ = layer.update(step_k, step_v)
    assert torch.equal(out_k[..., -1:, :], step_k) and layer.get_seq_length() == 16


def test_left_pad_puts_zeros_before_the_sequence() -> None:
    x = torch.ones(2, 3, 4, 8)
    padded = _left_pad(x, 6)
    assert padded.shape == (2, 3, 6, 8)
    assert torch.equal(padded[..., :2, :], torch.zeros(2, 3, 2, 8))
    assert _left_pad(x, 4) is x
    mask = torch.ones(2, 3, dtype=torch.long)
    assert _left_pad(mask, 5, dim=1).tolist() == [[0, 0, 1, 1, 1]] * 2
