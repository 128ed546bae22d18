"""FastPostProtocol over real sockets: fast routes, the ASGI path beside them, and HTTP's edges."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import httptools
import pytest
from tests.serving import uvicorn_thread

from finegate.models.http_fastpath import FastPostRoute, WholeAnswer

PROTOCOL = "finegate.models.http_fastpath:FastPostProtocol"
JSON = (b"content-type", b"application/json")


async def fast_handler(body: bytes | None, headers: list[tuple[bytes, bytes]]) -> Any:
    if body is None:
        return WholeAnswer(413, [JSON], b'{"error":"too large"}')
    if body.startswith(b"slow:"):
        await asyncio.sleep(float(body[5:]))
    if body == b"boom":
        raise ValueError("handler failed")
    if body == b"bad-header":
        return WholeAnswer(200, [(b"x-bad", b"a\r\nx-injected: 1")], b"{}")
    if body == b"stream":
        return stream_app
    if body == b"stream-until-gone":
        return stream_until_gone
    seen = dict(headers).get(b"x-tag", b"-")
    return WholeAnswer(200, [JSON, (b"x-via", b"fast"), (b"x-tag", seen)], body)


async def stream_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    for part in (b"data: 1\n\n", b"data: 2\n\n"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


GONE: list[Any] = []


async def stream_until_gone(scope: Any, receive: Any, send: Any) -> None:
    """Starts a stream, then waits for the client to go away (what `receive` says then)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    GONE.append(await receive())


class App:
    """An ASGI app answering every request with its method, path and body (``x-via: asgi``)."""

    def __init__(self, fast: bool = True) -> None:
        if fast:
            self.fast_post_routes = {b"/fast": FastPostRoute(fast_handler, 1000)}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        text = f"{scope['method']} {scope['path']}?{scope['query_string'].decode()} ".encode()
        out = text + body
        headers = [(b"x-via", b"asgi"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})


def served(app: Any, access_log: bool = False) -> Any:
    return uvicorn_thread(app, http=PROTOCOL, lifespan="off", proxy_headers=False,
                          access_log=access_log)  # fmt: skip


class Answers:
    """HTTP/1.1 answers parsed off one connection, in order."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self.closed = False

    def on_message_begin(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self.headers, self.body))


def exchange(conn: socket.socket, data: bytes, answers: int = 1) -> Answers:
    """Send ``data`` and read until ``answers`` answers arrived (or the server closed)."""
    out = Answers()
    conn.sendall(data)
    conn.settimeout(10)
    while len(out.done) < answers:
        chunk = conn.recv(65536)
        if not chunk:
            out.closed = True
            break
        out.parser.feed_data(chunk)
    return out


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


def test_fast_routes_answer_whole_and_keep_the_connection() -> None:
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        for i in range(3):
            body = b'{"n": %d}' % i
            ((status, headers, got),) = exchange(
                conn, post("/fast", body, b"x-tag: t%d\r\n" % i)
            ).done
            assert (status, got) == (200, body)
            assert headers[b"x-via"] == b"fast" and headers[b"x-tag"] == b"t%d" % i
            assert headers[b"content-length"] == str(len(body)).encode()
            assert b"date" in headers and b"connection" not in headers


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (b"GET /fast HTTP/1.1\r\nhost: t\r\n\r\n", b"GET /fast? "),
        (post("/fast?x=1", b"q"), b"POST /fast?x=1 q"),
        (post("/fast%2F", b"q"), b"POST /fast/? q"),
        (post("/other", b"q"), b"POST /other? q"),
    ],
)
def test_other_methods_targets_and_routes_take_the_asgi_path(
    request_bytes: bytes, expected: bytes
) -> None:
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        ((status, headers, body),) = exchange(conn, request_bytes).done
    assert (status, headers[b"x-via"], body) == (200, b"asgi", expected)


def test_expect_continue_and_http_1_0_take_the_asgi_path() -> None:
    with served(App()) as (port, _):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            answers = exchange(conn, post("/fast", b"q", b"expect: 100-continue\r\n"), answers=2)
        (go_on, _, _), (status, headers, body) = answers.done
        assert (go_on, status, headers[b"x-via"], body) == (100, 200, b"asgi", b"POST /fast? q")
        with socket.create_connection(("127.0.0.1", port)) as conn:
            answers = exchange(conn, b"POST /fast HTTP/1.0\r\ncontent-length: 1\r\n\r\nq")
        ((status, headers, body),) = answers.done
        assert (headers[b"x-via"], body, headers[b"connection"]) == (
            b"asgi", b"POST /fast? q", b"close"
        )  # fmt: skip


@pytest.mark.parametrize("app, access_log", [(App(fast=False), False), (App(), True)])
def test_without_fast_routes_or_with_an_access_log_uvicorn_serves_all(
    app: App, access_log: bool
) -> None:
    with served(app, access_log) as (port, _), socket.create_connection(("127.0.0.1", port)) as c:
        ((status, headers, body),) = exchange(c, post("/fast", b"q")).done
    assert (status, headers[b"x-via"], body) == (200, b"asgi", b"POST /fast? q")


def test_bodies_over_the_limit_get_the_handlers_answer_and_the_connection_goes_on() -> None:
    too_large = (413, b'{"error":"too large"}')
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        # Declared too large: answered before the body is read, which is then dropped.
        ((status, _, body),) = exchange(conn, post("/fast", b"x" * 5000)).done
        assert (status, body) == too_large
        ((status, _, body),) = exchange(conn, post("/fast", b"next")).done
        assert (status, body) == (200, b"next")
        # Chunked (no length declared): counted as it arrives.
        chunk = b"x" * 600
        chunked = (b"POST /fast HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
                   + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")  # fmt: skip
        ((status, _, body),) = exchange(conn, chunked).done
        assert (status, body) == too_large
        small = (b"POST /fast HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")  # fmt: skip
        ((status, _, body),) = exchange(conn, small).done
        assert (status, body) == (200, b"abcde")


def test_pipelined_requests_are_answered_in_order() -> None:
    """A request that arrives while an answer is pending queues, on uvicorn's ASGI path."""
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        data = (post("/fast", b"slow:0.2") + b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n"
                + post("/fast", b"slow:0.05") + post("/fast", b"last"))  # fmt: skip
        answers = exchange(conn, data, answers=4)
        assert [b for _, _, b in answers.done] == [
            b"slow:0.2", b"GET /x? ", b"POST /fast? slow:0.05", b"POST /fast? last"
        ]  # fmt: skip
        ((status, headers, body),) = exchange(conn, post("/fast", b"alone")).done
        assert (headers[b"x-via"], body) == (b"fast", b"alone")


def test_a_stream_runs_as_asgi_then_the_connection_goes_on() -> None:
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        ((status, headers, body),) = exchange(conn, post("/fast", b"stream")).done
        assert (status, headers[b"transfer-encoding"]) == (200, b"chunked")
        assert body == b"data: 1\n\ndata: 2\n\n"
        ((status, _, body),) = exchange(conn, post("/fast", b"then")).done
        assert (status, body) == (200, b"then")


def test_a_stream_learns_that_its_client_left_with_a_request_pipelined_behind() -> None:
    GONE.clear()
    with served(App()) as (port, _):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(post("/fast", b"stream-until-gone") + post("/fast", b"queued"))
            conn.settimeout(10)
            assert b"data: 1" in conn.recv(65536)
        deadline = time.monotonic() + 10
        while not GONE:
            assert time.monotonic() < deadline, "the stream never saw the disconnect"
            time.sleep(0.01)
    assert GONE == [{"type": "http.disconnect"}]


@pytest.mark.parametrize("body", [b"boom", b"bad-header"])
def test_a_failing_handler_answers_500_and_closes(body: bytes) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    with served(App()) as (port, _), socket.create_connection(("127.0.0.1", port)) as conn:
        logging.getLogger("uvicorn.error").addHandler(handler)
        try:
            answers = exchange(conn, post("/fast", body), answers=2)
        finally:
            logging.getLogger("uvicorn.error").removeHandler(handler)
    ((status, headers, got),) = answers.done
    assert (status, got, headers[b"connection"]) == (500, b"Internal Server Error", b"close")
    assert answers.closed and b"x-injected" not in headers
    assert [r.getMessage() for r in records] == ["Exception in ASGI application\n"]


def test_a_client_gone_mid_request_leaves_the_server_serving() -> None:
    with served(App()) as (port, _):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(post("/fast", b"slow:0.2"))
        time.sleep(0.4)  # the handler finishes after the client left
        with socket.create_connection(("127.0.0.1", port)) as conn:
            ((status, _, body),) = exchange(conn, post("/fast", b"ok")).done
    assert (status, body) == (200, b"ok")


def test_shutdown_finishes_a_request_in_flight_and_closes_its_connection() -> None:
    with served(App()) as (port, server), socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(post("/fast", b"slow:0.5"))
        deadline = time.monotonic() + 10
        while not server.server_state.tasks:  # the answer is being made
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.should_exit = True
        answers = exchange(conn, b"", answers=2)
    ((status, headers, body),) = answers.done
    assert (status, body, headers[b"connection"]) == (200, b"slow:0.5", b"close")
    assert answers.closed
