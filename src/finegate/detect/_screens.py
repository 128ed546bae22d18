"""Screens: exact, cheaper stand-ins for the hyperscan fragments of digit-shaped rules.

A phone number, a payment card or an IPv6 address is a chain of digits (colons) with short
gaps; hyperscan runs such bounded repeats as a state machine over every byte, and the three
fragments were 2 of the 5.7 us its candidates scan took per 2 KB text. `chain_screen` asks
`finegate._runs.chains` instead, which samples a byte in `count` (a chain lies in a run at
least that long) and returns the same answer as the fragment. The C extension is optional:
without it there is no screen and the fragment stays in the automaton.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

__all__ = ["chain_screen", "table"]

_chains: Callable[[bytes, bytes, int, int, bytes, bytes, bytes], bool] | None
try:
    from finegate._runs import chains as _chains
except ImportError:  # the C extension is optional
    _chains = None


def table(chars: bytes) -> bytes:
    """A 256-byte table: 1 at each of ``chars``, 0 elsewhere."""
    out = bytearray(256)
    for c in chars:
        out[c] = 1
    return bytes(out)


def chain_screen(
    member: bytes, gap: bytes, count: int, max_gap: int, before: bytes = b"", lead: bytes = b""
) -> Callable[[bytes], bool] | None:
    """Whether ``(?:^|[^before])[lead]?M(?:G{0,max_gap}M){count-1}`` matches a text's bytes.

    ``M`` is one of ``member``, ``G`` one of ``gap`` (disjoint sets of ASCII bytes); an empty
    ``before`` drops the start condition. None when the C extension is not built.
    """
    if _chains is None:
        return None
    if set(member) & set(gap) or max(member + gap + before + lead, default=0) > 127:
        raise ValueError("member and gap bytes must be disjoint ASCII sets")
    return partial(
        _chains,
        member if len(member) == 1 else table(member),  # one byte: found with memchr
        table(gap),
        count,
        max_gap,
        table(before) if before else b"",
        table(lead) if lead else b"",
    )
