"""The usage monitor's prompt sketch in C (`_usage_sketch`) against its Python specification."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from finegate.gateway import usage
from finegate.gateway.usage import _jaccard, _sketch_py

Sketch = Callable[[str, int, int], frozenset[int]]
_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _word(word: str, seed: int) -> int:
    h = 0xCBF29CE484222325 ^ seed
    for ch in word:
        h = ((h ^ ord(ch)) * 0x100000001B3) & _M64
    return _mix64(h)


def _trigram(a: int, b: int, c: int) -> int:
    return _mix64(_mix64(_mix64(a) ^ b) ^ c)


def _lower(word: str) -> str:
    """Each character's simple lowercase mapping: `str.lower` a character at a time, except
    for the one character whose full mapping is two (U+0130, dotted capital I)."""
    return "".join("i" if c == "\u0130" else c.lower() for c in word)


def reference_sketch(text: str, k: int, seed: int) -> frozenset[int]:
    """What the C function computes, in Python: `str.split` words, lowercased, FNV-1a,
    bottom-k."""
    words = [_word(_lower(w), seed) for w in text.split()[:2000]]
    if len(words) < 3:
        padded = [*words, 0, 0]
        return frozenset({_trigram(padded[0], padded[1], len(words))})
    grams = {_trigram(*words[i : i + 3]) for i in range(len(words) - 2)}
    return frozenset(sorted(grams)[:k])


# Python's str.split() separators beyond the ASCII ones, and letters of each storage width.
_SPACES = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0",
           "\u2003", "\u2028", "\u3000"]  # fmt: skip
_LETTERS = ["a", "z", "0", "é", "ß", "Ω", "ж", "\u200b", "中", "\ud800", "\U0001f600", "\u00ad",
            "A", "É", "Σ", "Ж", "\u0130", "\U00010400"]  # fmt: skip


def _texts(rng: random.Random) -> list[str]:
    texts = ["", " ", "one", "one two", " one  two ", "one two three"]
    for _ in range(300):
        vocab = ["".join(rng.choices(_LETTERS, k=rng.randint(1, 6))) for _ in range(40)]
        n = rng.choice([1, 2, 3, 5, 50, 400, 2100])
        words = rng.choices(vocab[: rng.choice([3, 40])], k=n)  # 3: many repeated trigrams
        seps = [rng.choice(_SPACES) for _ in words]
        texts.append("".join(w + s for w, s in zip(words, seps, strict=True)))
    return texts


@pytest.fixture(scope="module")
def c_sketch() -> Sketch:
    # Built by `make setup` (pip install -e .); the build is optional for users, not here.
    assert usage._c_sketch is not None, "the _usage_sketch extension was not built"
    return usage._c_sketch


def test_the_c_sketch_is_its_python_specification(c_sketch: Sketch) -> None:
    rng = random.Random(5)
    for text in _texts(rng):
        for k in (1, 3, 64, 500):
            seed = rng.getrandbits(64)
            assert c_sketch(text, k, seed) == reference_sketch(text, k, seed), (text[:80], k)


def test_the_c_sketch_splits_words_as_str_split_does(c_sketch: Sketch) -> None:
    # Same words however they are separated: the separators themselves never count.
    words = ["Alpha", "béta", "中文", "\U0001f600x", "delta", "echo"]
    seed = 7
    base = c_sketch(" ".join(words), 64, seed)
    for sep in _SPACES:
        assert c_sketch(sep + sep.join(words) + sep, 64, seed) == base, repr(sep)
    assert c_sketch("ALPHA BÉTA 中文 \U0001f600X Delta echo", 64, seed) == base  # case: no
    assert c_sketch("alphas béta 中文 \U0001f600x delta echo", 64, seed) != base
    with pytest.raises(ValueError, match="k must be"):
        c_sketch("a b c", 0, seed)
    with pytest.raises(TypeError):
        c_sketch(b"a b c", 64, seed)


def test_the_c_sketch_estimates_similarity_as_well_as_the_python_one() -> None:
    """Either sketch's similarity tracks the exact one of two prompts' trigram sets.

    `_jaccard` (common hashes among the larger sketch) estimates the Dice coefficient
    2|A & B| / (|A| + |B|), which equals Jaccard at 1 and is close to it near the
    near-duplicate threshold; a poor hash would scatter the estimates.
    """
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(2000)]
    errors: list[float] = []
    for _ in range(200):
        base = rng.choices(vocab, k=rng.randint(60, 400))
        other = list(base)
        for _ in range(rng.randint(0, len(base) // 4)):
            other[rng.randrange(len(other))] = rng.choice(vocab)
        a, b = " ".join(base), " ".join(other)
        grams_a = set(zip(base, base[1:], base[2:], strict=False))
        grams_b = set(zip(other, other[1:], other[2:], strict=False))
        exact = 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))
        for sketch in (usage._sketch, _sketch_py):
            errors.append(abs(_jaccard(sketch(a), sketch(b)) - exact))
    errors.sort()
    assert errors[len(errors) // 2] < 0.04 and errors[-1] < 0.2, errors[-5:]


def test_sketch_uses_the_c_function_and_lowercases_first(c_sketch: Sketch) -> None:
    assert usage._sketch("Hello There World") == usage._sketch("hello THERE world")
    assert usage._sketch("hello there world") == c_sketch("hello there world", 64, usage._SEED)


@pytest.mark.parametrize("impl", ["c", "python"])
def test_hash_counts_count_exactly_what_was_added_and_not_removed(impl: str) -> None:
    """Both implementations against `collections.Counter`, through growth and shrinking."""
    from collections import Counter

    assert usage._CHashCounts is not None, "the _usage_sketch extension was not built"
    counts = usage._CHashCounts() if impl == "c" else usage._PyHashCounts()
    rng = random.Random(9)
    expected: Counter[int] = Counter()
    held: list[frozenset[int]] = []
    pool = [rng.getrandbits(64) for _ in range(3000)] + [0, -1, -(2**63), 2**63 - 1]
    for step in range(4000):
        if held and (rng.random() < 0.45 or len(held) > 300):
            gone = held.pop(rng.randrange(len(held)))
            counts.remove(gone)
            expected.subtract(gone)
        else:
            new = frozenset(rng.sample(pool, rng.choice([1, 8, 64])))
            counts.add(new)
            expected.update(new)
            held.append(new)
        probe = frozenset(rng.sample(pool, 64))
        assert counts.shared(probe) == sum(expected[v] for v in probe), step
        assert len(counts) == sum(1 for v in expected.values() if v), step
    for gone in held:
        counts.remove(gone)
    assert len(counts) == 0 and counts.shared(pool) == 0


def test_hash_counts_refuse_what_is_not_a_64_bit_int() -> None:
    assert usage._CHashCounts is not None, "the _usage_sketch extension was not built"
    counts = usage._CHashCounts()
    with pytest.raises(OverflowError):
        counts.add([2**64])
    with pytest.raises(OverflowError):
        counts.add([-(2**63) - 1])
    assert len(counts) == 0
    with pytest.raises(TypeError):
        counts.add(["a"])  # type: ignore[list-item]
    with pytest.raises(KeyError):
        counts.remove([5])
    with pytest.raises(TypeError):
        usage._CHashCounts(1)  # type: ignore[call-arg]


def test_hash_counts_take_signed_and_unsigned_64_bit_ints_modulo_2_to_the_64() -> None:
    assert usage._CHashCounts is not None, "the _usage_sketch extension was not built"
    counts = usage._CHashCounts()
    edges = [0, 1, 2**30 - 1, 2**30, 2**60, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63), True]
    counts.add(edges)
    for v in edges:
        assert counts.shared([v]) == counts.shared([v % 2**64]) >= 1, v
    assert counts.shared([2**64 - 1]) == 2  # 2**64 - 1 and -1
    assert counts.shared([2**63]) == 2  # 2**63 and -(2**63)
    assert counts.shared([1]) == 2  # 1 and True


def test_the_c_sketch_lowercases_every_character_as_its_specification(c_sketch: Sketch) -> None:
    """Every code point, as a word of its own between two fixed words (a trigram each)."""
    import sys

    chars = [chr(i) for i in range(sys.maxunicode + 1) if not chr(i).isspace()]
    for start in range(0, len(chars), 20000):
        words = [f"{c}q" for c in chars[start : start + 20000]]
        for i in range(0, len(words), 1998):
            text = " ".join(words[i : i + 1998])
            assert c_sketch(text, 2000, 5) == reference_sketch(text, 2000, 5), words[i]
