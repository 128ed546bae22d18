"""The gateway as real processes: kill switch from another process, Redis-shared limits,
registry re-resolution, the CLI."""

from __future__ import annotations

import asyncio
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
def running_gateway(config: dict[str, Any], home: Path, name: str = "gw") -> Iterator[str]:
    port = free_port()
    cfg = home.parent / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = home.parent / f"{name}.log"
    env = {**os.environ, "FINEGATE_HOME": str(home)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*CLI, "gateway", "--config", str(cfg), "--port", str(port), "--log-level", "warning"],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
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
