"""The cheapest Python HTTP hop: a bare proxy, the floor under any gateway built like ours.

A raw ASGI app under the same server as the gateway (uvicorn with uvloop and httptools) that
reads each request body and POSTs it unchanged, with the same keep-alive pool the gateway
uses (`finegate.models.http_pool.PostPool`), to one upstream URL, then answers with the
upstream's status and body. No auth, no parsing, no guards, no logs. `bench_gateway.py
--floor` runs the same load through it: what it adds is what a Python gateway adds on this
machine before it checks anything.

    python benchmarks/bare_proxy.py --port 8100 --upstream http://127.0.0.1:8000/v1/chat/completions
"""

from __future__ import annotations

import argparse
from typing import Any

from finegate.models.http_pool import PostPool


def make_app(upstream: str) -> Any:
    """The ASGI app forwarding every POST body to ``upstream`` (``GET /readyz`` answers 200)."""
    pools: list[PostPool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            for pool in pools:
                pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":
            await answer(send, 200, b'{"status":"ready"}')
            return
        if not pools:
            pools.append(PostPool())
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        headers = {"Content-Type": "application/json", "Authorization": auth}
        reply = await pools[0].post(upstream, headers, b"".join(parts), 30.0)
        await answer(send, reply.status_code, reply.content)

    return app


async def answer(send: Any, status: int, body: bytes) -> None:
    """Send one JSON answer."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="The URL every POST goes to.")
    args = ap.parse_args()
    uvicorn.run(make_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, timeout_keep_alive=75)  # fmt: skip


if __name__ == "__main__":
    main()
