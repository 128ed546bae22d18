"""Bounded schemathesis fuzzing of the gateway from its own OpenAPI document (regression test).

Every operation gets generated requests (valid per the schema, and, for the chat endpoint,
invalid ones too) against a real uvicorn server; no answer may be a 5xx, and error bodies
must be OpenAI-shaped JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from gwutil import auth, base_config
from tests.serving import uvicorn_thread

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")


@pytest.fixture()
def live(store: Any, key_for: Any) -> Iterator[tuple[str, dict[str, Any], str]]:
    from finegate.gateway import create_app, load_config

    app = create_app(load_config(base_config(max_body_bytes=4096)), store)
    with uvicorn_thread(app, startup_s=60) as (port, _):
        yield f"http://127.0.0.1:{port}", app.openapi(), key_for("default")


def test_fuzz_every_operation_without_server_errors(live: tuple[str, dict[str, Any], str]):
    import requests
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    base, document, key = live
    document = copy.deepcopy(document)
    # Point generated requests at the configured model so they reach the guards and upstream.
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"]["properties"]["model"] = {"enum": ["bot"]}
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        modes = [GenerationMode.POSITIVE]
        if op.label == "POST /v1/chat/completions":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            examples = 40 if op.label.startswith("POST /v1/chat") else 8

            @settings(
                max_examples=examples, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                label = case.operation.label
                response = case.call(base_url=base, session=session, headers=auth(key))
                case.validate_response(response, checks=[not_a_server_error])
                seen.setdefault(label, set()).add(response.status_code)
                if response.status_code >= 400 and "json" in response.headers.get(
                    "content-type", ""
                ):
                    err = response.json().get("error")
                    assert isinstance(err, dict) and err.get("message"), response.text

            run()
    assert "POST /v1/chat/completions" in seen
    assert any(c < 300 for c in seen["POST /v1/chat/completions"])
    assert 400 in seen["POST /v1/chat/completions"]
