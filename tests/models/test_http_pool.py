"""`PostPool` against raw HTTP servers on local ports: reuse, stale connections, framing, faults.

The servers here write bytes by hand, so each answer shape (close-delimited, chunked,
malformed, none at all) is exactly the one named, not whatever a framework would send.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from finegate.models.http_pool import PostAnswer, PostPool

# Answers one request: gets (head, body) and the writer; returns whether to keep reading.
Answer = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[bool]]

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Serve on a free port; yield the URL and the request heads seen (one list per server)."""
    heads: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                heads.append(head + b"conn=%d" % connections)
                if not await answer(head, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions?x=1", heads
    finally:
        server.close()


async def keep_open(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    await writer.drain()
    return True


async def test_connections_are_reused_and_requests_framed() -> None:
    pool = PostPool()
    async with raw_server(keep_open) as (url, heads):
        for _ in range(3):
            r = await pool.post(url, {"Authorization": "Bearer t", "Content-Length": "9"},
                                b'{"a": 1}', 5.0)  # fmt: skip
            assert r.status_code == 200 and r.content == b'{"ok":true}'
    pool.close()
    assert len(heads) == 3 and all(h.endswith(b"conn=1") for h in heads)  # one connection
    first = heads[0].split(b"\r\n")
    assert first[0] == b"POST /v1/chat/completions?x=1 HTTP/1.1"
    assert first[1].startswith(b"Host: 127.0.0.1:")
    assert b"Content-Length: 8" in first and b"Authorization: Bearer t" in first
    assert b"Content-Length: 9" not in first  # the caller's framing header is not sent


async def test_answers_read_like_httpx_responses_and_gzip_bodies_are_decoded() -> None:
    body = b'{"error": {"message": "slow down"}}'
    zipped = gzip.compress(body)

    async def answer(head: bytes, _: bytes, writer: asyncio.StreamWriter) -> bool:
        gz = b"/gz" in head.split(b"\r\n", 1)[0]
        payload = zipped if gz else body
        extra = b"Content-Encoding: gzip\r\n" if gz else b"content-encoding: identity\r\n"
        writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (extra, len(payload), payload))  # fmt: skip
        await writer.drain()
        return True

    pool = PostPool()
    async with raw_server(answer) as (url, _):
        base = url.split("/v1/")[0]
        plain = await pool.post(f"{base}/plain", {}, b"{}", 5.0)
        unzipped = await pool.post(f"{base}/gz", {}, b"{}", 5.0)
    pool.close()
    for r in (plain, unzipped):
        assert isinstance(r, PostAnswer) and r.status_code == 429
        assert r.content == body and r.text == body.decode()
        assert r.json() == {"error": {"message": "slow down"}}
        assert r.headers.get("retry-after") == r.headers["Retry-After"] == "7"
    assert PostAnswer(200, [], b"\xff").text == "\ufffd"


async def test_a_reused_connection_closed_without_an_answer_is_retried_once() -> None:
    answered: set[int] = set()

    async def once_per_connection(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        # The second request on a connection finds it closing, as when a server's keep-alive
        # timeout strikes just as a request arrives: nothing is answered.
        if id(writer) in answered:
            return False
        answered.add(id(writer))
        writer.write(OK)
        await writer.drain()
        return True

    pool = PostPool()
    async with raw_server(once_per_connection) as (url, heads):
        assert (await pool.post(url, {}, b"{}", 5.0)).status_code == 200
        assert (await pool.post(url, {}, b"{}", 5.0)).status_code == 200
    pool.close()
    assert [h.rsplit(b"conn=", 1)[1] for h in heads] == [b"1", b"1", b"2"]


async def test_a_new_connection_closed_without_an_answer_is_an_error() -> None:
    async def hang_up(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async with raw_server(hang_up) as (url, _):
        with pytest.raises(httpx.RemoteProtocolError, match="without an answer"):
            await PostPool().post(url, {}, b"{}", 5.0)


CLOSE_DELIMITED = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"closed": 1}'
CHUNKED = (
    b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"c"\r\n5\r\n: 2}\n\r\n0\r\n\r\n'
)


@pytest.mark.parametrize(
    ("answer", "body"),
    [(CLOSE_DELIMITED, b'{"closed": 1}'), (CHUNKED, b'{"c": 2}\n')],
    ids=["close-delimited", "chunked"],
)
async def test_close_delimited_and_chunked_bodies_are_read_whole(
    answer: bytes, body: bytes
) -> None:
    async def send(head: bytes, _: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        await writer.drain()
        return b"chunked" in answer  # the close-delimited one ends with the connection

    pool = PostPool()
    async with raw_server(send) as (url, heads):
        for _ in range(2):
            r = await pool.post(url, {}, b"{}", 5.0)
            assert r.status_code == 200 and r.content == body
    pool.close()
    conns = {h.rsplit(b"conn=", 1)[1] for h in heads}
    assert len(conns) == (1 if b"chunked" in answer else 2)  # keep-alive only when delimited


async def test_malformed_answers_truncated_bodies_and_timeouts_are_httpx_errors() -> None:
    async def garbage(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        return True

    async def truncated(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"half')
        await writer.drain()
        return False

    async def silent(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    cases = [(garbage, httpx.RemoteProtocolError), (truncated, httpx.RemoteProtocolError),
             (silent, httpx.ReadTimeout)]  # fmt: skip
    for answer, error in cases:
        pool = PostPool()
        async with raw_server(answer) as (url, _):
            with pytest.raises(error):
                await pool.post(url, {}, b"{}", 0.3)
            assert not any(pool._idle.values())  # a failed connection is never reused
        pool.close()


async def test_connect_errors_and_other_schemes() -> None:
    async with raw_server(keep_open) as (url, _):
        pass  # closed again: nothing listens on that port now
    with pytest.raises(httpx.ConnectError):
        await PostPool().post(url, {}, b"{}", 1.0)
    with pytest.raises(ValueError, match="http:// URLs only"):
        await PostPool().post("https://example.invalid/x", {}, b"{}", 1.0)


def test_round_trip_on_uvloop() -> None:
    """The gateway runs on uvloop, whose transports are not asyncio.Transport subclasses."""
    import uvloop  # installed with uvicorn (the serve extra)

    async def main() -> int:
        pool = PostPool()
        async with raw_server(keep_open) as (url, _):
            r = await pool.post(url, {}, b"{}", 5.0)
            r2 = await pool.post(url, {}, b"{}", 5.0)
        pool.close()
        return r.status_code + r2.status_code

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == 400
