"""Real HTTP servers for tests: an ASGI app under uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def uvicorn_thread(
    app: Any, *, startup_s: float = 30.0, **config: Any
) -> Iterator[tuple[int, Any]]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yield the port and the `uvicorn.Server`.

    ``config`` goes to `uvicorn.Config` (defaults: ``log_level="warning"``, ``lifespan="on"``).
    """
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
