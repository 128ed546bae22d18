"""The digit-shape screens (`finegate._runs.ChainSet`) against the fragments they replace."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable

import pytest

from finegate.detect import Scanner, _pii, _screens, hyperscan_available
from finegate.detect._rules import RuleSet
from finegate.detect._screens import Chain, chain_set


def chain_screen(chain: Chain) -> Callable[[bytes], bool]:
    """Whether ``chain`` is found in a text's bytes: a set of this one chain."""
    found = chain_set([(0, chain)])
    assert found is not None
    return lambda data: found(data) == [0]


def reference(
    data: bytes, member: bytes, gap: bytes, count: int, max_gap: int, before: bytes, lead: bytes
) -> bool:
    """What the C function computes, as the regex it stands for (bytes: ASCII classes)."""
    m, g = b"[" + re.escape(member) + b"]", b"[" + re.escape(gap) + b"]"
    start = b"(?:^|[^" + re.escape(before) + b"])" if before else b""
    lead_part = b"[" + re.escape(lead) + b"]?" if lead else b""
    chain = m + b"(?:" + g + b"{0,%d}" % max_gap + m + b"){%d}" % (count - 1)
    return re.search(start + lead_part + chain, data, re.DOTALL) is not None


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    # Built by `make setup` (pip install -e .); the build is optional for users, not here.
    assert _screens._ChainSet is not None, "the _runs extension was not built"


def test_chains_are_the_regex_they_stand_for() -> None:
    rng = random.Random(5)
    shapes = [  # (member, gap, count, max_gap, before, lead)
        (b"0123456789", b" .-()", 7, 2, _pii._WORD + b"+.-/:$", b"+("),
        (b"0123456789", b" -", 13, 1, b"", b""),
        (b":", b"0123456789ABCDEFabcdef", 3, 4, b"", b""),
        (b"01", b"ab", 1, 0, b"x", b""),
        (b"9", b" ", 4, 3, b"9 ", b"+"),
    ]
    alphabets = [b"0123456789 .-()+x_/:$\xc3\xa9", b"12 -a", b":0fG x", b"01abx+ ", b"9 +x"]
    for _ in range(20000):
        shape = rng.choice(shapes)
        data = bytes(rng.choices(rng.choice(alphabets), k=rng.choice([0, 1, 3, 7, 13, 30, 200])))
        screen = chain_screen(Chain(*shape))
        assert screen(data) == reference(data, *shape), (shape, data)


def test_chains_are_found_wherever_they_fall_against_the_sampled_bytes() -> None:
    screen = chain_screen(Chain(b"0123456789", b" -", 13, 1))
    card = b"4111 1111-1111 1"  # 13 digits, single gaps
    for pad in range(40):
        for tail in (b"", b" x", b"x" * 17):
            data = b"y" * pad + card + tail
            assert screen(data), data
            assert not screen(b"y" * pad + card[:-1] + tail)  # 12 digits
            assert not screen(b"y" * pad + card.replace(b"-", b"--") + tail)  # a gap of 2


def test_each_screened_rule_answers_as_its_fragment() -> None:
    rules = [r for r in Scanner(["pii"])._ruleset.rules if r.screen is not None]
    assert {r.kind for r in rules} == {"pii.phone", "pii.credit_card", "pii.ip_address"}
    rng = random.Random(11)
    other = " .-()+:/$_aFx\u00e9\u2014"
    alphabets = {"pii.phone": "0123456789" * 3 + other, "pii.credit_card": "0123456789" * 4 + other,
                 "pii.ip_address": ":::0aF" + other}  # fmt: skip
    for r in rules:
        alphabet = alphabets[r.kind]
        assert r.hs is not None and r.screen is not None
        screen = chain_screen(r.screen)
        fragment = re.compile(r.hs.encode(), r.flags)
        hits = 0
        for _ in range(6000):
            data = "".join(rng.choices(alphabet, k=rng.choice([5, 15, 40]))).encode()
            expected = fragment.search(data) is not None
            assert screen(data) == expected, (r.kind, data)
            hits += expected
        assert 200 < hits < 5800, (r.kind, hits)  # the texts exercised both answers


def test_bad_tables_are_refused() -> None:
    from finegate._runs import ChainSet

    with pytest.raises(ValueError, match="256 bytes"):
        ChainSet([(0, b"xy", bytes(256), 3, 1, b"", b"")])
    with pytest.raises(ValueError, match="count"):
        ChainSet([(0, bytes(256), bytes(256), 0, 1, b"", b"")])
    with pytest.raises(ValueError, match="disjoint"):
        Chain(b"01", b"1 ", 3, 1)
    with pytest.raises(ValueError, match="count"):
        Chain(b"01", b" ", 0, 1)
    with pytest.raises(ValueError, match="256 bytes"):
        ChainSet([(0, b"01", bytes(256), 3, 1, b"", b"")])
    with pytest.raises(TypeError, match="spec"):
        ChainSet([(0, b"0")])


def test_a_chain_set_gives_the_ids_of_the_chains_found_in_order() -> None:
    rng = random.Random(9)
    chains = [
        Chain(b"0123456789", b" .-()", 7, 2, _pii._WORD + b"+.-/:$", b"+("),
        Chain(b"0123456789", b" -", 13, 1),
        Chain(b":", b"0123456789abcdef", 3, 4),
    ]
    ids = [7, 3, 11]
    both = chain_set(list(zip(ids, chains, strict=True)))
    singles = [chain_screen(c) for c in chains]
    assert both is not None
    for _ in range(3000):
        data = bytes(rng.choices(b"0123456789 -:.ab+x", k=rng.choice([0, 4, 20, 60])))
        expected = [i for i, s in zip(ids, singles, strict=True) if s(data)]
        assert both(data) == expected, data
    assert chain_set([]) is not None and chain_set([])(b"123") == []  # type: ignore[misc]


@pytest.mark.skipif(not hyperscan_available(), reason="compares two hyperscan prefilters")
def test_screened_and_unscreened_rule_sets_pick_the_same_candidates() -> None:
    """Without the C extension the fragments stay in the automaton: the same candidates."""
    rules = Scanner(["pii"])._ruleset.rules
    screened = RuleSet(rules, engine="hyperscan")
    plain = RuleSet([dataclasses.replace(r, screen=None) for r in rules], engine="hyperscan")
    assert screened._pre._screens and not plain._pre._screens  # type: ignore[union-attr]
    rng = random.Random(17)
    pieces = ["call +1 (555) 010-4477", "4111 1111 1111 1111", "fe80::1", "a:b:c",
              "EMAIL_0265851fcc74", "jane@acme-mail.com", "12.3", " ", "word", "\u00e9", "-", "(",
              "::", "2001:db8::ff"]  # fmt: skip
    for _ in range(3000):
        text = "".join(rng.choices(pieces, k=rng.choice([1, 3, 8, 30])))
        assert screened.candidates(text) == plain.candidates(text), text
