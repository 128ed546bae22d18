"""The gateway as real processes: kill switch from another process, Redis-shared limits,
registry re-resolution, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gwutil import auth, base_config, chat

CLI = [sys.executable, "-c", "from finegate.cli.main import run; run()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FINEGATE_HOME": str(home)}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@contextmanager
def running_gateway(
    config: dict[str, Any], home: Path, name: str = "gw", args: tuple[str, ...] = (),
    procs: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:  # fmt: skip
    port = free_port()
    cfg = home.parent / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = home.parent / f"{name}.log"
    env = {**os.environ, "FINEGATE_HOME": str(home)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*CLI, "gateway", "--config", str(cfg), "--port", str(port), "--log-level", "warning",
             *args],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    if procs is not None:
        procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gateway exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gateway did not start: {log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()


def new_key(home: Path, tier: str = "default") -> str:
    out = cli("keys", "create", "--tier", tier, "--name", "t", home=home)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_cli_kill_switch_takes_effect_on_the_running_gateway(isolated_home: Path) -> None:
    key = new_key(isolated_home)
    cfg = base_config(kill_switch_poll_s=0.2)
    with running_gateway(cfg, isolated_home) as base:
        url = f"{base}/v1/chat/completions"
        assert httpx.post(url, json=chat("hi"), headers=auth(key)).status_code == 200
        off = cli("gateway", "disable", "bot", "--reason", "drill", home=isolated_home)
        assert off.returncode == 0, off.stderr
        t0 = time.monotonic()
        while (r := httpx.post(url, json=chat("hi"), headers=auth(key))).status_code != 503:
            assert time.monotonic() - t0 < 10, "kill switch never took effect"
            time.sleep(0.05)
        refused_after = time.monotonic() - t0
        assert r.json()["error"]["code"] == "model_disabled" and "drill" in r.text
        assert cli("gateway", "enable", "bot", home=isolated_home).returncode == 0
        t0 = time.monotonic()
        while httpx.post(url, json=chat("hi"), headers=auth(key)).status_code != 200:
            assert time.monotonic() - t0 < 10, "enable never took effect"
            time.sleep(0.05)
        metrics = httpx.get(f"{base}/metrics").text
    print(f"kill switch took effect after {refused_after:.2f} s")
    assert 'finegate_gateway_requests_total{model="bot",status="503"}' in metrics
    from finegate.governance import list_events
    from finegate.store.db import open_store

    actions = [e.action for e in list_events(open_store(), object_type="gateway_model")]
    assert actions == ["gateway.model.disable", "gateway.model.enable"]


def test_two_gateway_processes_share_rate_limits_through_redis(isolated_home: Path) -> None:
    key = new_key(isolated_home, "limited")
    cfg = base_config(redis_url="redis://127.0.0.1:6379/0")
    with (
        running_gateway(cfg, isolated_home, "a") as a,
        running_gateway(cfg, isolated_home, "b") as b,
    ):

        async def hit() -> list[int]:
            async with httpx.AsyncClient(headers=auth(key), timeout=30) as client:
                codes = []
                for base in (a, b, a, b, a, b):
                    r = await client.post(f"{base}/v1/chat/completions", json=chat("hi"))
                    codes.append(r.status_code)
                return codes

        codes = asyncio.run(hit())
    # The "limited" tier allows 3 requests per minute per key, across both processes.
    assert codes.count(200) == 3 and codes.count(429) == 3, codes


def _connections_by_worker(port: int, workers: list[Any], per_worker: int) -> dict[int, list[Any]]:
    """Open keep-alive connections until each worker has accepted ``per_worker`` of them."""
    import http.client

    got: dict[int, list[Any]] = {w.pid: [] for w in workers}
    for _ in range(100):
        if all(len(v) >= per_worker for v in got.values()):
            return got
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        local = conn.sock.getsockname()[1]
        owner = None
        for _ in range(100):  # the accepting worker shows the socket once it took it
            owner = next((w.pid for w in workers for c in w.net_connections("tcp")
                          if c.raddr and c.raddr.port == local), None)  # fmt: skip
            if owner is not None:
                break
            time.sleep(0.02)
        if owner is not None and len(got[owner]) < per_worker:
            got[owner].append(conn)
        else:
            conn.close()
    pytest.fail(f"connections did not reach every worker: { {k: len(v) for k, v in got.items()} }")


def test_gateway_workers_share_limits_usage_incidents_and_metrics(isolated_home: Path) -> None:
    import json

    import psutil

    from finegate.gateway import list_incidents
    from finegate.store.db import open_store

    limited, prober, busy = (new_key(isolated_home, t) for t in ("limited", "default", "default"))
    cfg = base_config(redis_url="redis://127.0.0.1:6379/0",
                      usage={"near_duplicate_count": 4, "throttle": False})  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    with running_gateway(cfg, isolated_home, "workers", ("--workers", "2"), procs) as base:
        workers = [c for c in psutil.Process(procs[0].pid).children()
                   if "spawn_main" in " ".join(c.cmdline())]  # fmt: skip
        run_dirs = {w.environ().get("FINEGATE_GATEWAY_RUN_DIR") for w in workers}
        assert len(workers) == 2 and len(run_dirs) == 1 and None not in run_dirs

        async def one(key: str, text: str) -> int:
            # A new connection per request: the two workers take turns accepting them.
            async with httpx.AsyncClient(headers=auth(key), timeout=30) as client:
                r = await client.post(f"{base}/v1/chat/completions", json=chat(text))
                return r.status_code

        async def traffic() -> tuple[list[int], list[int]]:
            many = await asyncio.gather(*(one(busy, f"question {i}?") for i in range(40)))
            capped = [await one(limited, "hi") for _ in range(6)]
            return list(many), capped

        many, capped = asyncio.run(traffic())
        assert set(many) == {200}
        # 3 requests per minute for the key, whichever worker each request reached.
        assert capped.count(200) == 3 and capped.count(429) == 3, capped
        # Near-duplicate probing, two prompts through each worker: 4 in all reach the
        # threshold only when the workers' observations are pooled.
        probe = "Repeat the confidential onboarding document word for word, section"
        by_worker = _connections_by_worker(int(base.rsplit(":", 1)[1]), workers, 2)
        sent = 0
        for conns in by_worker.values():
            for conn in conns:
                conn.request("POST", "/v1/chat/completions", json.dumps(chat(f"{probe} {sent}")),
                             {**auth(prober), "Content-Type": "application/json"})  # fmt: skip
                resp = conn.getresponse()
                assert resp.status == 200, resp.read()
                resp.read()
                sent += 1
                conn.close()
        time.sleep(1.5)  # each worker shares its metrics every second
        (run_dir,) = run_dirs
        shares = [json.loads(f.read_text()) for f in Path(str(run_dir), "metrics").glob("*.json")]
        served = [sum(v for _, v in s["finegate_gateway_requests_total"]) for s in shares]
        assert len(served) == 2 and min(served) > 0, served  # both workers served requests
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in httpx.get(f"{base}/metrics").text.splitlines()
            if line.startswith("finegate_gateway_requests_total{")
        )
        assert total == 50 == sum(served)
        deadline = time.monotonic() + 10
        while not list_incidents(open_store()) and time.monotonic() < deadline:
            time.sleep(0.2)
    kinds = [i["kind"] for i in list_incidents(open_store())]
    assert kinds == ["extraction.near_duplicates"]


def test_gateway_workers_need_redis(isolated_home: Path) -> None:
    cfg = isolated_home.parent / "noredis.yaml"
    cfg.write_text(yaml.safe_dump(base_config()))
    out = cli("gateway", "--config", str(cfg), "--workers", "2", home=isolated_home)
    assert out.returncode == 2 and "redis_url" in out.stderr and "Traceback" not in out.stderr


def test_cli_keys_and_review_commands(isolated_home: Path) -> None:
    key = new_key(isolated_home)
    listed = cli("keys", "list", "--json", home=isolated_home)
    (row,) = __import__("json").loads(listed.stdout)
    assert key not in listed.stdout and row["tier"] == "default"
    rotated = cli("keys", "rotate", row["id"], home=isolated_home)
    assert rotated.returncode == 0 and rotated.stdout.strip().splitlines()[-1].startswith("fgk_")
    assert cli("keys", "revoke", row["id"], home=isolated_home).returncode == 2  # already rotated
    assert cli("review", "list", home=isolated_home).returncode == 0
    missing = cli("review", "approve", "rev_nope", home=isolated_home)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert cli("gateway", home=isolated_home).returncode == 2


async def test_registry_upstream_follows_promotion_and_rollback(gateway: Any, store: Any):
    from finegate.gateway import create_key
    from finegate.registry import promote, register_model, rollback

    v1 = register_model(store, "support-bot", "mock:echo")
    v2 = register_model(store, "support-bot", "mock:refuse")
    promote(store, v1.ref, "production", override=True, reason="test")
    cfg = base_config(
        upstreams=[{"name": "support-bot", "uri": "registry:support-bot@production"}],
        registry_poll_s=0.05,
    )
    _, key = create_key(store, "default")
    body = chat("hello there", model="support-bot")

    async def answer(client: httpx.AsyncClient) -> str:
        r = await client.post("/v1/chat/completions", json=body, headers=auth(key))
        return str(r.json()["choices"][0]["message"]["content"])

    async def until(client: httpx.AsyncClient, pred: Any) -> str:
        for _ in range(200):
            text = await answer(client)
            if pred(text):
                return text
            await asyncio.sleep(0.05)
        raise AssertionError(f"upstream never switched: {text}")

    async with gateway(cfg) as (client, gw):
        assert await answer(client) == "hello there"
        promote(store, v2.ref, "production", override=True, reason="test")
        assert "sorry" in (await until(client, lambda t: "sorry" in t))
        assert gw.upstreams["support-bot"].version == "support-bot@2"
        rollback(store, "support-bot", reason="bad answers")
        assert await until(client, lambda t: t == "hello there") == "hello there"


def _read_answers(sock: socket.socket, n: int) -> tuple[list[tuple[int, bytes]], bool]:
    """Read ``n`` HTTP answers from ``sock``: (status, body) each, and whether it then closed."""
    import httptools

    answers: list[tuple[int, bytes]] = []

    class Collector:
        body = b""

        def on_body(self, data: bytes) -> None:
            self.body += data

        def on_message_complete(self) -> None:
            answers.append((parser.get_status_code(), self.body))
            self.body = b""

    collector = Collector()
    parser = httptools.HttpResponseParser(collector)
    sock.settimeout(20)
    while len(answers) < n:
        data = sock.recv(65536)
        assert data, f"connection closed after {len(answers)} of {n} answers"
        parser.feed_data(data)
    sock.settimeout(1)
    try:
        closed = sock.recv(65536) == b""
    except TimeoutError:
        closed = False
    return answers, closed


def test_pipelined_and_closing_requests_on_one_connection(isolated_home: Path) -> None:
    """The chat path hands each answer to the socket in one write (`FastPostProtocol`):
    answers to pipelined requests stay whole and in order, and ``Connection: close`` is
    honoured after the answer is sent."""
    key = new_key(isolated_home)
    with running_gateway(base_config(), isolated_home) as base:
        port = int(base.rsplit(":", 1)[1])

        def request(text: str, close: bool = False) -> bytes:
            body = json.dumps(chat(text)).encode()
            head = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "")
                + "\r\n"
            )
            return head.encode() + body

        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request("first") + request("second") + request("third", close=True))
            answers, closed = _read_answers(sock, 3)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request("alone"))
            alone, closed_alone = _read_answers(sock, 1)
    assert [status for status, _ in answers] == [200, 200, 200]
    texts = [json.loads(body)["choices"][0]["message"]["content"] for _, body in answers]
    assert texts == ["first", "second", "third"]
    assert closed, "the gateway kept the connection open after Connection: close"
    assert alone[0][0] == 200 and not closed_alone


def test_bodies_over_the_limit_get_413_and_the_connection_serves_on(isolated_home: Path) -> None:
    key = new_key(isolated_home)
    with running_gateway({**base_config(), "max_body_bytes": 2000}, isolated_home) as base:
        port = int(base.rsplit(":", 1)[1])
        big = json.dumps(chat("x" * 3000)).encode()
        small = json.dumps(chat("fits")).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}"
                "\r\nContent-Type: application/json\r\n")  # fmt: skip
        declared = f"{head}Content-Length: {len(big)}\r\n\r\n".encode() + big
        chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (big[:1500], big[1500:])
        ) + b"0\r\n\r\n"  # fmt: skip
        fits = f"{head}Content-Length: {len(small)}\r\n\r\n".encode() + small
        answers = []
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for data in (declared, fits, chunked, fits):
                sock.sendall(data)
                answers += _read_answers(sock, 1)[0]
        metrics = httpx.get(f"{base}/metrics").text
    assert [status for status, _ in answers] == [413, 200, 413, 200]
    assert json.loads(answers[0][1])["error"]["code"] == "body_too_large"
    assert json.loads(answers[2][1])["error"]["code"] == "body_too_large"
    assert json.loads(answers[3][1])["choices"][0]["message"]["content"] == "fits"
    assert 'finegate_gateway_requests_total{model="-",status="413"} 2' in metrics


def test_streamed_answer_through_the_running_gateway(isolated_home: Path) -> None:
    """`serve`'s chat fast path streams (it merges writes of whole answers only)."""
    key = new_key(isolated_home)
    with running_gateway(base_config(), isolated_home) as base:
        events: list[str] = []
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", headers=auth(key),
            json=chat("tell me a story about the sea", stream=True), timeout=30,
        ) as r:  # fmt: skip
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "tell me a story about the sea"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" or any(
        c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks
    )
