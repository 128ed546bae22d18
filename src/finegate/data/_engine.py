"""Where the per-record batch scan runs: in this process, or on Ray Data (``--engine ray``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from finegate.data._batch import BatchConfig, scan_batch
from finegate.errors import ConfigError

ENGINES = ("local", "ray")
Progress = Callable[[int], None]


def run_local(
    payloads: Sequence[dict[str, Any]],
    config: BatchConfig,
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run `scan_batch` over ``payloads`` in this process, batch by batch."""
    out: list[dict[str, Any]] = []
    for k in range(0, len(payloads), batch_size):
        batch = payloads[k : k + batch_size]
        out.extend(scan_batch(batch, config))
        if progress is not None:
            progress(len(batch))
    return out


def _ray_fn(config: BatchConfig) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def fn(batch: dict[str, Any]) -> dict[str, Any]:
        payloads = [json.loads(s) for s in batch["rec"]]
        results = scan_batch(payloads, config)
        return {"i": list(batch["i"]), "out": [json.dumps(r) for r in results]}

    return fn


def run_ray(
    payloads: Sequence[dict[str, Any]],
    config: BatchConfig,
    *,
    batch_size: int = 256,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run the same `scan_batch` on Ray Data with ``workers`` parallel tasks.

    Connects to the Ray cluster in ``RAY_ADDRESS`` when set, else starts a local instance
    with ``workers`` CPUs. Records travel as JSON strings; results come back in input order.

    Raises:
        ConfigError: when Ray is not installed (``pip install 'finegate[ray]'``).
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray Data", hint="pip install 'finegate[ray]'"
        ) from None
    import os

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    rows = [{"i": i, "rec": json.dumps(p)} for i, p in enumerate(payloads)]
    source = ray.data.from_items(
        rows, override_num_blocks=max(workers, len(rows) // batch_size or 1)
    )
    ds = source.map_batches(
        _ray_fn(config), batch_size=batch_size, batch_format="numpy", concurrency=workers
    )
    out: list[dict[str, Any] | None] = [None] * len(payloads)
    for row in ds.iter_rows():
        out[int(row["i"])] = json.loads(row["out"])
        if progress is not None:
            progress(1)
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:
        raise ConfigError(f"Ray returned no result for {len(missing)} records")
    return [r for r in out if r is not None]


def run_batches(
    payloads: Sequence[dict[str, Any]],
    config: BatchConfig,
    *,
    engine: str = "local",
    batch_size: int = 256,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run the per-record scan with the chosen engine (``local`` or ``ray``)."""
    if engine == "local":
        return run_local(payloads, config, batch_size=batch_size, progress=progress)
    if engine == "ray":
        return run_ray(payloads, config, batch_size=batch_size, workers=workers, progress=progress)
    raise ConfigError(f"unknown engine {engine!r}", hint=f"known: {', '.join(ENGINES)}")
