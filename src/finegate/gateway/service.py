"""The gateway's request handling, independent of the web framework.

`Gateway.chat` takes the raw body and the Authorization header and returns a `Reply`: a JSON
body with a status, or a stream of server-sent events. Every failure is an OpenAI-shaped
error; nothing sensitive is logged (log lines carry exception types and ids only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate import _json as fast_json
from finegate.errors import ConfigError, ModelError, ModelUnavailableError
from finegate.gateway.config import GatewayConfig, TierConfig
from finegate.gateway.guards import GuardBlocked, GuardEngine
from finegate.gateway.keys import KeyCache, KeyInfo
from finegate.gateway.metrics import GatewayMetrics
from finegate.gateway.openapi import KNOWN_FIELDS
from finegate.gateway.ratelimit import RateLimiter, make_limiter
from finegate.gateway.records import disabled_models, purge_request_log, record_incident
from finegate.gateway.request_log import make_log_writer
from finegate.gateway.upstream import Upstream
from finegate.gateway.usage import Incident, UsageMonitor
from finegate.models.openai_wire import (
    WireRequestError,
    error_body,
    request_from_openai,
)
from finegate.models.types import ModelBackend

if TYPE_CHECKING:
    from finegate.gateway.workers import UsageClient
    from finegate.store.db import Store

__all__ = ["Gateway", "Reply"]

log = logging.getLogger("finegate.gateway")

# With several workers, the one holding a lock on this file in the run directory purges.
_PURGE_LOCK = "purge.lock"


@dataclass
class Reply:
    """What the web layer sends: JSON (``body``) or server-sent events (``stream``)."""

    status: int
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class GatewayError(Exception):
    """An error answer: status, OpenAI error type and code."""

    def __init__(
        self, status: int, message: str, type_: str, code: str, headers: Mapping[str, str] = {}
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type_, self.code = status, message, type_, code
        self.headers = dict(headers)

    def reply(self) -> Reply:
        """Render as a `Reply`."""
        body = error_body(self.message, type_=self.type_, code=self.code)
        return Reply(self.status, body, headers=self.headers)


def unauthorized() -> GatewayError:
    """The one answer for missing, unknown and revoked keys."""
    return GatewayError(
        401, "invalid, revoked or missing API key (send 'Authorization: Bearer <key>')",
        "invalid_request_error", "invalid_api_key",
    )  # fmt: skip


@dataclass
class _Ctx:
    """Facts about one request, filled in as it goes (for the log and metrics)."""

    request_id: str
    start: float
    key: KeyInfo | None = None
    model: str | None = None
    upstream_s: float = 0.0
    decisions: list[Any] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    output: str = ""
    tool_calls: list[Any] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Gateway:
    """One gateway process: configuration, shared state and background tasks.

    Args:
        config: The configuration.
        store: The store (keys, kill switch, reviews, log); default: the process store.
        backends: Pre-built backends by upstream name (tests), instead of loading URIs.
        limiter: A rate limiter; default from ``config.redis_url``.
        run_dir: The run directory of a multi-worker gateway (`finegate.gateway.workers`):
            usage monitoring goes to its monitor process, metrics are shared through it.
    """

    def __init__(
        self,
        config: GatewayConfig,
        store: Store | None = None,
        *,
        backends: Mapping[str, ModelBackend] | None = None,
        limiter: RateLimiter | None = None,
        run_dir: Path | None = None,
    ) -> None:
        if store is None:
            from finegate.store.db import open_store

            store = open_store()
        self.config = config
        self.store = store
        self.engine = GuardEngine(config)
        self.keys = KeyCache(store, ttl_s=config.key_cache_s)
        self.limiter = limiter or make_limiter(config.redis_url)
        self.usage = UsageMonitor(config.usage)
        self.run_dir = run_dir
        self.usage_client: UsageClient | None = None
        if run_dir is not None and config.usage.enabled:
            from finegate.gateway.workers import UsageClient, usage_socket

            self.usage_client = UsageClient(usage_socket(run_dir), self.handle_incident)
        self.metrics = GatewayMetrics()
        self.log_writer = make_log_writer(
            store, mode=config.request_log_writer, flush_s=config.log_flush_s
        )
        self.upstreams = {u.name: Upstream(u, store) for u in config.upstreams}
        self._given = dict(backends or {})
        self.disabled: dict[str, str] = {}
        self.ready = False
        self._last_poll = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._purge_lock: int | None = None  # the run directory's purge lock, once held
        self.metrics.add_gauge(
            "finegate_gateway_log_dropped", "Request-log rows dropped.",
            lambda: float(self.log_writer.dropped),
        )  # fmt: skip
        client = self.usage_client
        self.metrics.add_gauge(
            "finegate_gateway_usage_dropped",
            "Prompts not usage-monitored (the monitor process was unreachable).",
            lambda: float(client.dropped if client is not None else 0),
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load upstreams, read the kill switch and start the background tasks."""
        for name, up in self.upstreams.items():
            if name in self._given:
                up.backend = self._given[name]
                up.resolved_uri = up.config.uri if not up.is_registry else "given:"
            else:
                await up.start()
        await self.poll_state()
        self.log_writer.start()
        if self.usage_client is not None:
            await self.usage_client.start()
        if self.run_dir is not None:
            self._tasks.append(asyncio.create_task(self._metrics_loop(), name="gateway-metrics"))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="gateway-poll"))
        self._tasks.append(asyncio.create_task(self._registry_loop(), name="gateway-registry"))
        self._tasks.append(asyncio.create_task(self._purge_loop(), name="gateway-purge"))
        self.ready = True

    async def aclose(self) -> None:
        """Stop tasks, flush the log, close upstreams and the limiter."""
        self.ready = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.usage_client is not None:
            await self.usage_client.aclose()
        await self.log_writer.aclose()
        self._share_metrics()
        for up in self.upstreams.values():
            await up.aclose()
        await self.limiter.aclose()
        if self._purge_lock is not None:
            os.close(self._purge_lock)  # releases the lock: another worker purges from now on
            self._purge_lock = None

    async def poll_state(self) -> None:
        """Read the kill-switch state from the store now."""
        try:
            self.disabled = await asyncio.to_thread(disabled_models, self.store)
            self._last_poll = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - keep the last known state
            log.error("gateway: kill-switch poll failed (%s)", type(exc).__name__)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.kill_switch_poll_s)
            await self.poll_state()

    async def _registry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.registry_poll_s)
            for up in self.upstreams.values():
                if up.name in self._given:
                    continue
                try:
                    await up.refresh()
                except Exception as exc:  # noqa: BLE001 - keep serving the current version
                    log.error("gateway: re-resolving %s failed (%s)", up.name, type(exc).__name__)

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._share_metrics()

    def _share_metrics(self) -> None:
        if self.run_dir is None:
            return
        from finegate.gateway.workers import write_metrics

        try:
            write_metrics(self.run_dir, self.metrics.snapshot())
        except OSError as exc:
            log.error("gateway: cannot share metrics (%s)", type(exc).__name__)

    def render_metrics(self) -> str:
        """``/metrics``: this process's values, plus the other workers' when there are any."""
        if self.run_dir is None:
            return self.metrics.render()
        from finegate.gateway.workers import read_metrics

        return self.metrics.render(read_metrics(self.run_dir))

    async def observe_usage(self, key_id: str, prompt: str) -> None:
        """Usage monitoring of one prompt (in this process, or sent to the shared service)."""
        if self.usage_client is not None:
            self.usage_client.observe(key_id, prompt)
            return
        for incident in self.usage.observe(key_id, prompt):
            await self.handle_incident(incident)

    async def handle_incident(self, incident: Incident) -> None:
        """Count and record a usage incident; throttle its key when configured."""
        cfg = self.config.usage
        self.metrics.incidents.inc(kind=incident.kind)
        await asyncio.to_thread(
            record_incident, self.store, incident.key_id, incident.kind, incident.severity,
            incident.details, cfg.throttle,
        )  # fmt: skip
        if cfg.throttle:
            await self.limiter.throttle(incident.key_id, cfg.throttle_s, cfg.throttle_rpm)

    async def _purge_loop(self) -> None:
        while True:
            if self.runs_purge():
                try:
                    n = await asyncio.to_thread(
                        purge_request_log, self.store, self.config.request_log_retention_days
                    )
                    if n:
                        log.info("gateway: purged %d request-log rows", n)
                except Exception as exc:  # noqa: BLE001
                    log.error("gateway: request-log purge failed (%s)", type(exc).__name__)
            await asyncio.sleep(3600)

    def runs_purge(self) -> bool:
        """Whether this process runs the hourly request-log purge.

        A gateway of one process does. Of several workers, one does: the holder of the run
        directory's purge lock, which the system releases when its holder dies, so the next
        worker to ask (the replacement uvicorn starts, or another within the hour) takes over.
        """
        if self.run_dir is None or self._purge_lock is not None:
            return True
        import fcntl

        fd = os.open(self.run_dir / _PURGE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._purge_lock = fd
        return True

    def is_ready(self) -> bool:
        """Upstreams loaded and the store answered recently."""
        fresh = time.monotonic() - self._last_poll < max(5.0, 10 * self.config.kill_switch_poll_s)
        return self.ready and fresh and all(u.backend for u in self.upstreams.values())

    # -- auth ----------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> KeyInfo:
        """Return the caller's key, or raise 401."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        info = await self.keys.get(token.strip())
        if info is None:
            raise unauthorized()
        return info

    def tier_of(self, key: KeyInfo) -> TierConfig:
        """The key's tier (a key whose tier was removed from the config gets 403)."""
        tier = self.config.tiers.get(key.tier)
        if tier is None:
            raise GatewayError(
                403, f"tier {key.tier!r} of this key is not configured on this gateway",
                "permission_error", "tier_not_configured",
            )  # fmt: skip
        return tier

    # -- chat ----------------------------------------------------------------------------

    async def chat(self, body: bytes, authorization: str | None) -> Reply:
        """Handle one ``POST /v1/chat/completions``."""
        from finegate.gateway.chat import handle_chat

        ctx = _Ctx(request_id=f"req_{os.urandom(10).hex()}", start=time.perf_counter())
        try:
            reply = await handle_chat(self, ctx, body, authorization)
        except GatewayError as exc:
            reply = exc.reply()
        except GuardBlocked as exc:
            ctx.decisions = [d.to_dict() for d in exc.decisions]
            self._count_decisions(exc.decisions)
            reply = GatewayError(
                400, exc.message, "invalid_request_error", "content_blocked"
            ).reply()
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 without details
            log.error("gateway: internal error in %s (%s)", ctx.request_id, type(exc).__name__)
            reply = GatewayError(
                500, f"internal gateway error (request {ctx.request_id})", "server_error",
                "internal_error",
            ).reply()  # fmt: skip
        reply.headers.setdefault("x-request-id", ctx.request_id)
        if reply.stream is None:
            self.finish(ctx, reply.status, _outcome(reply))
        return reply

    def _count_decisions(self, decisions: Any) -> None:
        inc = self.metrics.guard_actions.inc_series
        for d in decisions:  # the labels by name, as `Counter.inc` would sort them
            inc((("action", d.action), ("rule", d.rule), ("stage", d.stage)))

    def finish(self, ctx: _Ctx, status: int, outcome: str) -> None:
        """Record metrics and queue the (redacted) request-log row."""
        total = time.perf_counter() - ctx.start
        model = ctx.model or "-"
        self.metrics.requests.inc(model=model, status=str(status))
        self.metrics.latency.observe(total, model=model)
        if ctx.upstream_s:
            self.metrics.upstream_latency.observe(ctx.upstream_s, model=model)
            self.metrics.overhead.observe(max(0.0, total - ctx.upstream_s), model=model)
        if not self.config.request_log:
            return
        self.log_writer.add(
            {
                "request_id": ctx.request_id,
                "key_id": ctx.key.id if ctx.key else None,
                "tier": ctx.key.tier if ctx.key else None,
                "model": ctx.model,
                "status": status,
                "outcome": outcome,
                "messages": ctx.messages,
                "output": ctx.output,
                "tool_calls": ctx.tool_calls,
                "decisions": ctx.decisions,
                "latency_ms": total * 1000.0,
                "upstream_ms": ctx.upstream_s * 1000.0,
                "prompt_tokens": ctx.prompt_tokens,
                "completion_tokens": ctx.completion_tokens,
            }
        )


def _outcome(reply: Reply) -> str:
    if reply.status == 202:
        return "held"
    if reply.status >= 400 and reply.body is not None:
        return str(reply.body.get("error", {}).get("code") or "error")
    return "ok"


def parse_body(config: GatewayConfig, body: bytes) -> tuple[dict[str, Any], Any, bool]:
    """Validate a chat body: (raw dict, `ChatRequest`, stream flag); raise 400/413."""
    if len(body) > config.max_body_bytes:
        raise GatewayError(
            413, f"request body is larger than {config.max_body_bytes} bytes",
            "invalid_request_error", "body_too_large",
        )  # fmt: skip
    try:
        body.decode("utf-8")  # a clear error for bytes that are not UTF-8, before parsing
        data = fast_json.loads(body)
    except UnicodeDecodeError:
        raise GatewayError(
            400, "request body is not valid UTF-8", "invalid_request_error", "invalid_utf8"
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = (
            f"request body is not valid JSON: {exc}" if isinstance(exc, ValueError) else "too deep"
        )
        raise GatewayError(400, msg, "invalid_request_error", "invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(
            400, "request body must be a JSON object", "invalid_request_error", "invalid_request"
        )
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise GatewayError(
            400, f"unrecognized request argument(s): {', '.join(unknown)[:200]}",
            "invalid_request_error", "unknown_field",
        )  # fmt: skip
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            400, "'model' must be a non-empty string", "invalid_request_error", "invalid_request"
        )
    try:
        request, stream = request_from_openai(data)
    except (WireRequestError, ConfigError) as exc:
        raise GatewayError(400, exc.message, "invalid_request_error", "invalid_request") from None
    except (TypeError, AttributeError, ValueError):
        raise GatewayError(
            400, "malformed request body", "invalid_request_error", "invalid_request"
        ) from None
    return data, request, stream


def upstream_error(name: str, exc: Exception) -> GatewayError:
    """Map an upstream failure to 502/504 without leaking its details."""
    if isinstance(exc, ModelUnavailableError) and "timed out" in str(exc):
        return GatewayError(
            504, f"upstream model {name} timed out", "server_error", "upstream_timeout"
        )
    if isinstance(exc, ModelUnavailableError):
        return GatewayError(
            502, f"upstream model {name} is unavailable", "server_error", "upstream_unavailable"
        )
    if isinstance(exc, ModelError):
        return GatewayError(502, f"upstream model {name} failed", "server_error", "upstream_error")
    return GatewayError(502, f"upstream model {name} failed", "server_error", "upstream_error")
