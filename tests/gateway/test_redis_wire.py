"""`RespClient` against the real Redis (127.0.0.1:6379) and hand-written fake servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from finegate.gateway.redis_wire import RedisError, RespClient

URL = "redis://127.0.0.1:6379/0"


def _name() -> str:
    return f"fg-test-wire-{uuid.uuid4().hex[:8]}"


async def test_replies_of_every_kind_and_errors() -> None:
    client = RespClient.from_url(URL)
    assert client is not None
    key = _name()
    try:
        assert await client.call("SET", key, "v\r\nwith framing bytes", "PX", 60000) == "OK"
        assert await client.call("GET", key) == b"v\r\nwith framing bytes"
        assert await client.call("GET", _name()) is None
        assert await client.call("INCRBY", key + ":n", 41) == 41
        nested = await client.call("EVAL", "return {1, 'two', {3}, false}", 0)
        assert nested == [1, b"two", [3], None]
        with pytest.raises(RedisError, match="WRONGTYPE|not an integer"):
            await client.call("INCR", key)
        assert await client.call("EXISTS", key) == 1  # the connection survives an error reply
        await client.call("DEL", key, key + ":n")
    finally:
        await client.aclose()


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies() -> None:
    client = RespClient.from_url(URL)
    assert client is not None
    keys = [_name() for _ in range(300)]
    try:
        got = await asyncio.gather(*(client.call("INCRBY", k, i) for i, k in enumerate(keys)))
        assert got == list(range(300))
        ids = await asyncio.gather(*(client.call("CLIENT", "ID") for _ in range(5)))
        assert len(set(ids)) == 1
        await client.call("DEL", *keys)
    finally:
        await client.aclose()


async def test_a_killed_connection_is_reopened_on_the_next_call() -> None:
    client, admin = RespClient.from_url(URL), RespClient.from_url(URL)
    assert client is not None and admin is not None
    try:
        first = await client.call("CLIENT", "ID")
        assert await admin.call("CLIENT", "KILL", "ID", first) == 1
        await asyncio.sleep(0.1)  # the close reaches the client
        assert await client.call("CLIENT", "ID") != first
    finally:
        await client.aclose()
        await admin.aclose()


async def test_database_number_selects_the_database() -> None:
    db3, db0 = RespClient.from_url("redis://127.0.0.1:6379/3"), RespClient.from_url(URL)
    assert db3 is not None and db0 is not None
    key = _name()
    try:
        await db3.call("SET", key, "3", "PX", 60000)
        assert await db0.call("GET", key) is None and await db3.call("GET", key) == b"3"
        await db3.call("DEL", key)
    finally:
        await db3.aclose()
        await db0.aclose()


Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_redis(reply: Reply) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that hands each chunk it reads to ``reply``; yields its port and the chunks."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                seen.append(data)
                await reply(data, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


async def test_auth_select_and_replies_split_across_reads() -> None:
    async def byte_by_byte(data: bytes, writer: asyncio.StreamWriter) -> None:
        answer = b"+OK\r\n" if data.startswith((b"*3\r\n$4\r\nAUTH", b"*2\r\n$6\r\nSELECT")) else (
            b"*3\r\n:7\r\n$5\r\nab\r\nc\r\n$-1\r\n"
        )  # fmt: skip
        for i in range(len(answer)):
            writer.write(answer[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    async with fake_redis(byte_by_byte) as (port, seen):
        client = RespClient.from_url(f"redis://bob:p%40ss@127.0.0.1:{port}/2")
        assert client is not None and client.password == "p@ss"
        assert await client.call("GET", "x") == [7, b"ab\r\nc", None]
        await client.aclose()
    sent = b"".join(seen)
    assert sent.startswith(b"*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$4\r\np@ss\r\n*2\r\n$6\r\nSELECT\r\n")
    assert sent.endswith(b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n")


async def test_a_late_reply_fails_every_waiting_call_and_the_next_call_reconnects() -> None:
    answered = 0

    async def first_silent(data: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        if answered:  # the second connection answers
            writer.write(b":1\r\n" * data.count(b"*1\r\n"))
        answered += 1

    async with fake_redis(first_silent) as (port, _):
        client = RespClient("127.0.0.1", port, timeout_s=0.3)
        results = await asyncio.gather(client.call("PING"), client.call("PING"),
                                       return_exceptions=True)  # fmt: skip
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert await client.call("PING") == 1
        await client.aclose()


async def test_unreachable_servers_and_urls_it_does_not_serve() -> None:
    async with fake_redis(lambda d, w: asyncio.sleep(0)) as (port, _):
        pass  # closed: nothing listens there now
    with pytest.raises(OSError):
        await RespClient("127.0.0.1", port).call("PING")
    assert RespClient.from_url("rediss://127.0.0.1:6380/0") is None
    assert RespClient.from_url("unix:///run/redis.sock") is None


async def test_limiter_loads_its_script_again_after_the_server_forgot_it() -> None:
    from finegate.gateway.ratelimit import RedisLimiter

    lim = RedisLimiter(URL, prefix=_name())
    try:
        assert (await lim.check("k", 2, 0, 1)).allowed
        await lim._client.call("SCRIPT", "FLUSH")  # as after a Redis restart
        assert (await lim.check("k", 2, 0, 1)).allowed
        assert not (await lim.check("k", 2, 0, 1)).allowed  # the count survived the reload
    finally:
        await lim.aclose()
