"""The selection policy: weights of the scorecard dimensions and the families they read.

``resources/policies/selection.yaml`` is the built-in one; ``finegate select --policy FILE``
takes another (validated strictly, errors name the field).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finegate.errors import ConfigError

__all__ = ["Determinism", "SelectionPolicy", "Weights", "load_selection_policy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """How much each dimension counts (any non-negative numbers; they are normalized)."""

    task_fit: float = Field(default=1.0, ge=0)
    controllability: float = Field(default=1.0, ge=0)
    stability: float = Field(default=1.0, ge=0)
    safety: float = Field(default=1.0, ge=0)
    debuggability: float = Field(default=1.0, ge=0)
    latency: float = Field(default=1.0, ge=0)
    throughput: float = Field(default=1.0, ge=0)


class Determinism(_Strict):
    """Repeated greedy runs: how many, over how many of the suite's first cases."""

    repeats: int = Field(default=2, ge=2, le=10)
    max_cases: int = Field(default=12, ge=1)


class SelectionPolicy(_Strict):
    """Weights and family choices of a selection (``resources/policies/selection.yaml``)."""

    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    weights: Weights = Field(default_factory=Weights)
    task_fit_families: list[str] = Field(default_factory=lambda: ["task-fit"])
    controllability_families: list[str] = Field(
        default_factory=lambda: [
            "controllability-schema",
            "controllability-hierarchy",
            "tool-misuse",
        ]
    )
    determinism: Determinism = Field(default_factory=Determinism)

    def content_hash(self) -> str:
        """Return the sha256 of the canonical JSON."""
        import hashlib
        import json

        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def load_selection_policy(spec: str | None = None) -> SelectionPolicy:
    """Load a selection policy: None or ``selection`` for the built-in one, else a file.

    Raises:
        ConfigError: for a missing or invalid file, naming the field.
    """
    from pathlib import Path

    import yaml

    from finegate.gate.policy import builtin_policy_text, read_yaml

    if spec is None or (spec == "selection" and not Path(spec).is_file()):
        data, where = yaml.safe_load(builtin_policy_text("selection")), "built-in selection"
    else:
        data, where = read_yaml(Path(spec), "selection policy"), spec
    if not isinstance(data, dict):
        raise ConfigError(f"invalid selection policy {where}: expected a mapping")
    if "version" in data:
        data = {**data, "version": str(data["version"])}
    try:
        return SelectionPolicy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"invalid selection policy {where}: {loc}: {msg}") from None
