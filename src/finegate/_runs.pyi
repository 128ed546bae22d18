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
