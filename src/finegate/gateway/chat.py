"""The chat-completions pipeline: auth, limits, input guard, upstream, output guard, review."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from finegate import _json as fast_json
from finegate.gateway.guards import (
    BLOCKED_OUTPUT,
    InputResult,
    OutputResult,
    may_hold_for_review,
)
from finegate.gateway.records import create_review
from finegate.gateway.service import GatewayError, Reply, parse_body, upstream_error
from finegate.gateway.stream import StreamGuard
from finegate.models.openai_wire import new_completion_id, response_to_openai, stream_chunks
from finegate.models.types import ChatRequest

if TYPE_CHECKING:
    from finegate.gateway.config import TierConfig
    from finegate.gateway.service import Gateway, _Ctx
    from finegate.gateway.upstream import Upstream

__all__ = ["handle_chat", "pending_body"]


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: %s\n\n" % fast_json.dumps(obj)


def pending_body(review_id: str, model: str) -> dict[str, Any]:
    """The answer a client gets while its response waits for a human reviewer."""
    return {
        "object": "finegate.review",
        "id": review_id,
        "review_id": review_id,
        "status": "pending",
        "model": model,
        "message": "The answer was held for human review. Poll GET /v1/reviews/"
        f"{review_id} with the same API key; it returns the answer once approved.",
    }


async def _admit(gw: Gateway, ctx: _Ctx, data: dict[str, Any], request: ChatRequest) -> Upstream:
    """Model and tool permissions, kill switch, rate limits, usage monitoring."""
    assert ctx.key is not None
    tier = gw.tier_of(ctx.key)
    model = str(data["model"])
    up = gw.upstreams.get(model)
    if up is None:
        raise GatewayError(
            404, f"the model {model!r} does not exist on this gateway",
            "invalid_request_error", "model_not_found",
        )  # fmt: skip
    ctx.model = model
    if not tier.allows_model(model):
        raise GatewayError(
            403, f"tier {ctx.key.tier!r} may not use model {model!r}",
            "permission_error", "model_not_allowed",
        )  # fmt: skip
    denied = sorted({t.name for t in request.tools} - set(tier.tools.allowed))
    if denied:
        raise GatewayError(
            403, f"tier {ctx.key.tier!r} may not offer tool(s) {', '.join(denied)[:200]}",
            "permission_error", "tool_not_allowed",
        )  # fmt: skip
    if model in gw.disabled:
        why = gw.disabled[model]
        raise GatewayError(
            503, f"model {model!r} is disabled by the gateway kill switch"
            + (f": {why}" if why else ""), "service_unavailable", "model_disabled",
        )  # fmt: skip
    chars = sum(len(m.content) for m in request.messages)
    ctx.prompt_tokens = chars // 4 + 1
    verdict = await gw.limiter.check(
        ctx.key.id, tier.limits.requests_per_minute, tier.limits.tokens_per_minute,
        ctx.prompt_tokens,
    )  # fmt: skip
    if not verdict.allowed:
        gw.metrics.rate_limited.inc(tier=ctx.key.tier)
        raise GatewayError(
            429, verdict.reason, "rate_limit_error", "rate_limit_exceeded",
            {"Retry-After": str(int(verdict.retry_after_s))},
        )  # fmt: skip
    users = [m.content for m in request.messages if m.role == "user"]
    if users:
        await gw.observe_usage(ctx.key.id, users[-1])
    return up


async def handle_chat(gw: Gateway, ctx: _Ctx, body: bytes, authorization: str | None) -> Reply:
    """Run the whole pipeline for one request."""
    ctx.key = await gw.authenticate(authorization)
    data, request, stream = parse_body(gw.config, body)
    up = await _admit(gw, ctx, data, request)
    tier = gw.tier_of(ctx.key)
    inp = gw.engine.guard_input(request, tier, namespace=ctx.request_id)
    ctx.messages = inp.log_messages
    ctx.decisions = [d.to_dict() for d in inp.decisions]
    gw._count_decisions(inp.decisions)
    if stream and not may_hold_for_review(tier):
        return await _stream(gw, ctx, up, tier, inp, data)
    t0 = time.perf_counter()
    try:
        response = await up.generate(inp.request)
    except Exception as exc:  # noqa: BLE001 - mapped to 502/504
        gw.metrics.upstream_errors.inc(model=up.name, kind=type(exc).__name__)
        raise upstream_error(up.name, exc) from None
    finally:
        ctx.upstream_s = time.perf_counter() - t0
    if response.error is not None:
        gw.metrics.upstream_errors.inc(model=up.name, kind="response_error")
        raise upstream_error(up.name, RuntimeError())
    out = gw.engine.guard_output(response, inp.request, tier, inp)
    _note_output(gw, ctx, out)
    if tier.limits.tokens_per_minute and response.completion_tokens:
        await gw.limiter.add_tokens(ctx.key.id, response.completion_tokens)
    if out.review_reasons:
        return await _hold(gw, ctx, up.name, out, inp)
    cid = new_completion_id()
    if stream:
        return _buffered_stream(gw, ctx, out, up.name, cid, data)
    return Reply(200, _completion(out, up.name, cid))


def _note_output(gw: Gateway, ctx: _Ctx, out: OutputResult) -> None:
    gw._count_decisions(out.decisions)
    ctx.decisions.extend(d.to_dict() for d in out.decisions)
    ctx.output = out.log_text
    ctx.tool_calls = out.log_tool_calls
    ctx.prompt_tokens = out.response.prompt_tokens or ctx.prompt_tokens
    ctx.completion_tokens = out.response.completion_tokens


def _completion(out: OutputResult, model: str, cid: str) -> dict[str, Any]:
    body = response_to_openai(out.response, model, completion_id=cid)
    if out.blocked or any(d.action == "block" for d in out.decisions):
        body["choices"][0]["finish_reason"] = "content_filter"
    return body


async def _hold(gw: Gateway, ctx: _Ctx, model: str, out: OutputResult, inp: InputResult) -> Reply:
    assert ctx.key is not None
    completion = _completion(out, model, new_completion_id())
    rid = await asyncio.to_thread(
        create_review, gw.store, key_id=ctx.key.id, model=model, reasons=out.review_reasons,
        request={"messages": inp.log_messages}, response=completion,
    )  # fmt: skip
    gw.metrics.reviews.inc(model=model)
    return Reply(202, pending_body(rid, model), headers={"x-review-id": rid})


def _buffered_stream(
    gw: Gateway, ctx: _Ctx, out: OutputResult, model: str, cid: str, data: dict[str, Any]
) -> Reply:
    chunks = stream_chunks(out.response, model, include_usage=_usage(data), completion_id=cid)
    if out.blocked:
        chunks[1]["choices"][0]["finish_reason"] = "content_filter"

    async def events() -> AsyncIterator[bytes]:
        for c in chunks:
            yield _sse(c)
        yield b"data: [DONE]\n\n"
        gw.finish(ctx, 200, "ok")

    return Reply(200, stream=events())


def _usage(data: dict[str, Any]) -> bool:
    opts = data.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


async def _stream(
    gw: Gateway, ctx: _Ctx, up: Upstream, tier: TierConfig, inp: InputResult,
    data: dict[str, Any],
) -> Reply:  # fmt: skip
    """Stream the answer through a `StreamGuard` (holding back the minimal tail)."""
    guard = StreamGuard(gw.engine, tier, inp.request, inp)
    cid = new_completion_id()
    base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": up.name}  # fmt: skip
    t0 = time.perf_counter()
    source = up.stream(inp.request).__aiter__()
    try:
        first = await source.__anext__()
    except StopAsyncIteration:
        first = None
    except Exception as exc:  # noqa: BLE001 - before any byte is sent: a proper status
        ctx.upstream_s = time.perf_counter() - t0
        gw.metrics.upstream_errors.inc(model=up.name, kind=type(exc).__name__)
        raise upstream_error(up.name, exc) from None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    async def events() -> AsyncIterator[bytes]:
        status, final = 200, None
        yield chunk({"role": "assistant", "content": ""})
        try:
            pending = [first] if first is not None else []
            while True:
                if pending:
                    item = pending.pop()
                else:
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        break
                if item.final is not None:
                    final = item.final
                    continue
                safe = guard.feed(item.text)
                if safe:
                    yield chunk({"content": safe})
                if guard.blocked:
                    break
        except Exception as exc:  # noqa: BLE001 - headers are sent: report in the stream
            gw.metrics.upstream_errors.inc(model=up.name, kind=type(exc).__name__)
            err = upstream_error(up.name, exc)
            yield _sse({"error": {"message": err.message, "type": err.type_, "code": err.code}})
            yield b"data: [DONE]\n\n"
            ctx.upstream_s = time.perf_counter() - t0
            gw.finish(ctx, 200, "upstream_error_in_stream")
            return
        ctx.upstream_s = time.perf_counter() - t0
        rest = guard.finish()
        if rest:
            yield chunk({"content": rest})
        finish = "stop"
        if final is not None and final.error is not None:
            status = 502
        if guard.blocked:
            yield chunk({"content": BLOCKED_OUTPUT})
            finish = "content_filter"
        elif final is not None:
            kept, decisions, _, log_calls = gw.engine.check_tool_calls(final.tool_calls, tier)
            guard.decisions.extend(decisions)
            ctx.tool_calls = log_calls
            if kept:
                calls = [
                    {"index": i, "id": c.id or f"call_{i}", "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments}}
                    for i, c in enumerate(kept)
                ]  # fmt: skip
                yield chunk({"tool_calls": calls})
                finish = "tool_calls"
            elif final.tool_calls:
                yield chunk({"content": "[finegate] blocked tool call(s)"})
                finish = "content_filter"
            elif final.finish_reason == "length":
                finish = "length"
            ctx.completion_tokens = final.completion_tokens
        yield chunk({}, finish)
        if _usage(data):
            pt, ct = ctx.prompt_tokens, ctx.completion_tokens
            usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
            yield _sse({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        gw._count_decisions(guard.decisions)
        ctx.decisions.extend(d.to_dict() for d in guard.decisions)
        findings = gw.engine.scan_output(guard.text, inp.request) if guard.text else []
        from finegate.detect import redact

        ctx.output = redact(guard.text, findings, mode="redact").text if findings else guard.text
        gw.finish(ctx, status, "blocked" if guard.blocked else "ok")

    return Reply(200, stream=events())
