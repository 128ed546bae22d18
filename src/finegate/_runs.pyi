from collections.abc import Sequence

def runs(data: bytes, table: bytes, shortest: int, /) -> list[tuple[int, int]]: ...
def chains(
    member: bytes,
    gap: bytes,
    count: int,
    max_gap: int,
    before: bytes,
    lead: bytes,
    data: bytes,
    /,
) -> bool: ...

class ChainSet:
    def __init__(
        self, specs: Sequence[tuple[int, bytes, bytes, int, int, bytes, bytes]], /
    ) -> None: ...
    def __call__(self, data: bytes, /) -> list[int]: ...
