"""Screens: exact, cheaper stand-ins for the hyperscan fragments of digit-shaped rules.

A phone number, a payment card or an IPv6 address is a chain of digits (colons) with short
gaps; hyperscan runs such bounded repeats as a state machine over every byte, and the three
fragments were 2 of the 5.7 us its candidates scan took per 2 KB text. A `Chain` describes
such a fragment; `chain_set` asks all of a rule set's chains of a text in one call to
`finegate._runs.ChainSet`, which samples a byte in `count` (a chain lies in a run at least
that long) and gives the fragment's answer. The C extension is optional: without it
`chain_set` returns None and the fragments stay in the automaton.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Chain", "chain_set", "table"]

_ChainSet: Any
try:
    from finegate._runs import ChainSet as _ChainSet
except ImportError:  # the C extension is optional
    _ChainSet = None


def table(chars: bytes) -> bytes:
    """A 256-byte table: 1 at each of ``chars``, 0 elsewhere."""
    out = bytearray(256)
    for c in chars:
        out[c] = 1
    return bytes(out)


@dataclass(frozen=True)
class Chain:
    """The fragment ``(?:^|[^before])[lead]?M(?:G{0,max_gap}M){count-1}`` as a screen.

    ``M`` is one of ``member``, ``G`` one of ``gap`` (disjoint sets of ASCII bytes); an
    empty ``before`` drops the start condition, an empty ``lead`` the optional lead byte.

    Raises:
        ValueError: The sets overlap or hold bytes that are not ASCII, or ``count`` < 1.
    """

    member: bytes
    gap: bytes
    count: int
    max_gap: int
    before: bytes = b""
    lead: bytes = b""

    def __post_init__(self) -> None:
        everything = self.member + self.gap + self.before + self.lead
        if set(self.member) & set(self.gap) or max(everything, default=0) > 127:
            raise ValueError("member and gap bytes must be disjoint ASCII sets")
        if not self.member or self.count < 1 or self.max_gap < 0:
            raise ValueError("a chain needs member bytes, count >= 1 and max_gap >= 0")

    def tables(self) -> tuple[bytes, bytes, int, int, bytes, bytes]:
        """A `finegate._runs.ChainSet` spec after its id (one member byte: memchr)."""
        return (
            self.member if len(self.member) == 1 else table(self.member),
            table(self.gap),
            self.count,
            self.max_gap,
            table(self.before) if self.before else b"",
            table(self.lead) if self.lead else b"",
        )


def chain_set(chains: Sequence[tuple[int, Chain]]) -> Callable[[bytes], list[int]] | None:
    """One callable giving the ids of the ``(id, chain)`` pairs found in a text's bytes.

    None when the C extension is not built.
    """
    if _ChainSet is None:
        return None
    made: Callable[[bytes], list[int]] = _ChainSet([(i, *c.tables()) for i, c in chains])
    return made
