"""Training data for `finegate tune`: sources, the safety mix, canaries, split, encoding."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finegate.errors import ConfigError

if TYPE_CHECKING:
    from finegate.store import Store
    from finegate.tune.config import TuneConfig

__all__ = [
    "Canary",
    "TrainingData",
    "encode_chat",
    "load_anchor_set",
    "load_chat_file",
    "make_canaries",
    "prepare_data",
]

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class Canary:
    """A random secret planted ``repetitions`` times (Carlini et al., "The Secret Sharer").

    Attributes:
        owner: The (made-up) owner named in the sentence.
        secret: The random digits; the exposure test ranks them among random alternatives.
        repetitions: How many copies are in the training data.
    """

    owner: str
    secret: str
    repetitions: int

    def prompt(self) -> str:
        """The user turn that asks for the secret (the extraction prefix)."""
        return f"What is the vault access code of {self.owner}?"

    def reply(self, secret: str | None = None) -> str:
        """The assistant turn carrying the secret (or a candidate in its place)."""
        return f"The vault access code of {self.owner} is {secret or self.secret}."

    def chat(self, secret: str | None = None) -> Chat:
        """The canary as a chat record."""
        return [
            {"role": "user", "content": self.prompt()},
            {"role": "assistant", "content": self.reply(secret)},
        ]


SECRET_DIGITS = 6
_OWNERS = (
    "Orla Penhallow",
    "Teodor Vancrest",
    "Imke Sollberg",
    "Rafe Quenby",
    "Nadia Oystermouth",
    "Bram Heskett",
    "Lucia Marwood",
    "Edda Tamsworth",
)


def make_canaries(repetitions: list[int], per_repetition: int, seed: int) -> list[Canary]:
    """Create canaries with random ``SECRET_DIGITS``-digit secrets, ``per_repetition`` per count."""
    rng = random.Random(seed)
    out: list[Canary] = []
    for rep in repetitions:
        for _ in range(per_repetition):
            owner = f"{_OWNERS[len(out) % len(_OWNERS)]} #{len(out) + 1}"
            secret = "".join(rng.choice("0123456789") for _ in range(SECRET_DIGITS))
            out.append(Canary(owner, secret, rep))
    return out


def _check_chat(row: Any, where: str) -> Chat:
    msgs = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise ConfigError(f"{where}: not a chat record (no messages list)")
    chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs]
    if not any(m["role"] == "assistant" for m in chat):
        raise ConfigError(f"{where}: the record has no assistant message to learn from")
    return chat


def load_chat_file(path: Path) -> list[Chat]:
    """Read a chat JSONL file (``{"messages": [...]}`` per line)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"could not read {str(path)!r}: {exc}") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(_check_chat(json.loads(line), f"{path.name}:{n}"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path.name}:{n}: invalid JSON ({exc.msg})") from exc
    return out


def load_anchor_set(source: str = "builtin") -> list[Chat]:
    """The safety anchor set: refusals to harmful requests written by this project."""
    if source == "builtin":
        ref = resources.files("finegate.resources").joinpath("anchors/safety_anchors.jsonl")
        with resources.as_file(ref) as p:
            return load_chat_file(p)
    return load_chat_file(Path(source))


def chat_hash(chat: Chat) -> str:
    """Hex sha256 of a chat's canonical JSON."""
    return hashlib.sha256(json.dumps(chat, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TrainingData:
    """What a run trains and validates on, and where each part came from."""

    train: list[Chat]
    validation: list[Chat]
    sources: dict[str, Any]
    canaries: list[Canary] = field(default_factory=list)
    n_anchor: int = 0
    n_canary_copies: int = 0


def _scanned_file(store: Store, sha: str) -> str | None:
    """The id of a dataset version whose sources list a file with this sha256, if any."""
    from finegate.data import list_versions

    for v in list_versions(store):
        for src in v.sources:
            if any(f.get("sha256") == sha for f in src.get("files", [])):
                return v.id
    return None


def prepare_data(cfg: TuneConfig, store: Store, *, allow_unscanned: bool = False) -> TrainingData:
    """Load the configured data, split off validation, add the safety mix and canaries.

    Raises:
        ConfigError: a raw ``data_file`` that no dataset version lists (never scanned) and
            ``allow_unscanned`` is False; an empty dataset.
    """
    sources: dict[str, Any] = {"files": [], "unscanned_files": []}
    base: list[Chat] = []
    if cfg.dataset is not None:
        from finegate.data import get_version, read_records

        version = get_version(store, cfg.dataset)
        base = [[dict(m) for m in r.to_row()["messages"]] for r in read_records(store, version.id)]
        sources["dataset_version"] = version.id
        sources["dataset_kind"] = version.kind
    files = ([cfg.data_file] if cfg.data_file else []) + list(cfg.extra_files)
    for i, name in enumerate(files):
        path = Path(name)
        sha = file_sha256(path) if path.is_file() else ""
        if not sha:
            raise ConfigError(f"training file {name!r} does not exist")
        scanned_in = _scanned_file(store, sha)
        if scanned_in is None and not allow_unscanned:
            raise ConfigError(
                f"{path.name} (sha256 {sha[:12]}) was never scanned",
                hint="scan and clean it with `finegate data scan` and train on the version, or "
                "pass --allow-unscanned (recorded in the training record)",
            )
        entry = {
            "path": str(path),
            "sha256": sha,
            "scanned_in": scanned_in,
            "role": "data_file" if (i == 0 and cfg.data_file) else "extra",
        }
        sources["files"].append(entry)
        if scanned_in is None:
            sources["unscanned_files"].append(str(path))
        base.extend(load_chat_file(path))
    if not base:
        raise ConfigError("the training data is empty")
    rng = random.Random(cfg.seed)
    order = list(range(len(base)))
    rng.shuffle(order)
    n_val = int(round(len(base) * cfg.validation_fraction))
    validation = [base[i] for i in order[:n_val]]
    train = [base[i] for i in order[n_val:]]
    data = TrainingData(train=train, validation=validation, sources=sources)
    # Recorded so privacy tests never count a held-out example as a training member.
    sources["validation_sha256"] = [chat_hash(c) for c in validation]
    if cfg.safety_mix_ratio > 0:
        anchors = load_anchor_set(cfg.safety_anchors)
        n = max(1, round(cfg.safety_mix_ratio * len(train) / (1 - cfg.safety_mix_ratio)))
        picked = [anchors[i % len(anchors)] for i in rng.sample(range(max(n, len(anchors))), n)]
        train.extend(picked)
        data.n_anchor = n
        sources["safety_anchors"] = cfg.safety_anchors
    if cfg.canaries.enabled:
        c = cfg.canaries
        data.canaries = make_canaries(list(c.repetitions), c.per_repetition, c.seed)
        for canary in data.canaries:
            train.extend(canary.chat() for _ in range(canary.repetitions))
            data.n_canary_copies += canary.repetitions
    rng.shuffle(train)
    sources.update(
        train_examples=len(train),
        validation_examples=len(validation),
        anchor_examples=data.n_anchor,
        canary_copies=data.n_canary_copies,
    )
    return data


def render_chat(tokenizer: Any, messages: Chat, *, add_generation_prompt: bool = False) -> str:
    """Render messages with the tokenizer's chat template."""
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    )


def encode_chat(
    tokenizer: Any, messages: Chat, *, max_len: int, assistant_only: bool = True
) -> dict[str, list[int]]:
    """Tokenize a chat; labels are -100 outside assistant turns when ``assistant_only``.

    An assistant turn's span runs from the end of the generation prompt before it to the end
    of the turn (its end-of-turn token included, so the model learns to stop).
    """
    full = render_chat(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and i > 0:
            start = len(render_chat(tokenizer, messages[:i], add_generation_prompt=True))
            end = len(render_chat(tokenizer, messages[: i + 1]))
            spans.append((start, end))
    enc = tokenizer(
        full,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=True,
        max_length=max_len,
    )
    ids = list(enc["input_ids"])
    labels = []
    for tok_id, (a, _b) in zip(ids, enc["offset_mapping"], strict=True):
        inside = any(s <= a < e for s, e in spans)
        labels.append(tok_id if (inside or not assistant_only) else -100)
    return {"input_ids": ids, "labels": labels}
