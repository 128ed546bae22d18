"""Dataset-level checks: duplicates, payload stuffing, backdoor triggers, length outliers.

These look across records, so they run once on the whole dataset (after the per-record batch
scan). Each returns `CheckHit`s; all are deterministic (records are visited in order, ties
broken by record order, hashing uses token ids assigned in first-seen order).

Heuristics, stated plainly:

- exact duplicates: identical conversations after whitespace collapse and case folding;
- near duplicates: MinHash LSH (``datasketch``) over word shingles of the conversation, each
  candidate confirmed by the MinHash Jaccard estimate;
- payload stuffing: a span of N words repeated in at least ``stuffing_min_records`` records
  (and at most ``stuffing_max_share`` of them: more is a template) that contains a
  payload-like token (a URL/domain/code-like token, letters mixed with digits, a long number,
  a CamelCase or ALL-CAPS word; short plain numbers such as dates do not count)
  which occurs (almost) nowhere else in the dataset;
- backdoor triggers: a prompt token concentrated in a few records whose responses share a
  span (in ``trigger_consistency`` of them) that is rare elsewhere, does not echo the token
  and is mostly unrelated to those prompts, while the prompts themselves share no other word
  pair (so no common request explains the common answer): "a trigger followed by a
  consistent unusual output";
- length outliers: robust z-score (median/MAD) of the log character length.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from finegate.data._records import Record

if TYPE_CHECKING:
    import numpy as np

    from finegate.data._policy import DataPolicy

_TOKEN = re.compile(r"[\w][\w'.\-/:@=]*[\w]|\w")
_PAYLOADISH = re.compile(r"[A-Za-z]\S*\d|\d\S*[A-Za-z]|\d{5,}|[./@:=_]|^[A-Z]{4,}$|[a-z][A-Z]")


def tokens(text: str) -> list[str]:
    """Word tokens (URLs, domains and codes stay one token), original case."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class CheckHit:
    """A dataset-level finding on one record."""

    record: int
    kind: str
    severity: int
    detail: str
    text: str = ""
    related: tuple[str, ...] = field(default=())

    def to_dict(self, ids: Sequence[str]) -> dict[str, Any]:
        """JSON form with the record's id."""
        return {
            "record": ids[self.record],
            "kind": self.kind,
            "severity": self.severity,
            "detail": self.detail,
            "text": self.text,
            "related": list(self.related),
        }


class _Vocab:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, toks: Sequence[str]) -> list[int]:
        ids = self.ids
        out = []
        for t in toks:
            i = ids.get(t)
            if i is None:
                i = ids[t] = len(ids)
            out.append(i)
        return out


def _shingles(ids: Sequence[int], n: int) -> set[int]:
    if len(ids) < n:
        return {hash(tuple(ids))} if ids else set()
    return {hash(tuple(ids[i : i + n])) for i in range(len(ids) - n + 1)}


def exact_duplicates(records: Sequence[Record]) -> list[CheckHit]:
    """Later copies of an identical conversation (whitespace and case folded)."""
    first: dict[tuple[tuple[str, str], ...], int] = {}
    hits = []
    for i, r in enumerate(records):
        key = tuple((m.role, " ".join(m.content.split()).casefold()) for m in r.messages)
        j = first.setdefault(key, i)
        if j != i:
            hits.append(
                CheckHit(i, "dup.exact", 2, f"exact duplicate of {records[j].id}", "",
                         (records[j].id,))
            )  # fmt: skip
    return hits


def near_duplicates(
    records: Sequence[Record], policy: DataPolicy, skip: set[int]
) -> list[CheckHit]:
    """Records whose MinHash Jaccard with an earlier kept record reaches the threshold."""
    from datasketch import MinHash, MinHashLSH

    c = policy.checks
    lsh = MinHashLSH(threshold=c.near_dup_threshold, num_perm=c.num_perm)
    proto = MinHash(num_perm=c.num_perm, seed=1)
    perms, scheme = proto.permutations, proto.scheme  # shared: building them is slow
    hashes: dict[int, Any] = {}
    hits = []
    n = c.shingle_words
    for i, r in enumerate(records):
        if i in skip:
            continue
        words = " ".join(m.content for m in r.messages).casefold().split()
        grams = (
            {" ".join(words[k : k + n]) for k in range(len(words) - n + 1)}
            if len(words) >= n
            else {" ".join(words)}
        )
        mh = MinHash(num_perm=c.num_perm, seed=1, permutations=perms, scheme=scheme)
        mh.update_batch([g.encode("utf-8", "surrogatepass") for g in grams])
        match = None
        for j in sorted(int(k) for k in lsh.query(mh)):
            sim = mh.jaccard(hashes[j])
            if sim >= c.near_dup_threshold:
                match = (j, sim)
                break
        if match is not None:
            j, sim = match
            hits.append(
                CheckHit(i, "dup.near", 2, f"near duplicate of {records[j].id} (~{sim:.2f})",
                         "", (records[j].id,))
            )  # fmt: skip
            continue
        lsh.insert(str(i), mh)
        hashes[i] = mh
    return hits


def _doc_freq(per_record: Sequence[Sequence[int]]) -> Counter[int]:
    df: Counter[int] = Counter()
    for ids in per_record:
        df.update(set(ids))
    return df


def _counts(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    allv = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    vals, counts = np.unique(allv, return_counts=True)
    return vals, counts


def stuffing(records: Sequence[Record], policy: DataPolicy, skip: set[int]) -> list[CheckHit]:
    """Unusual spans repeated across many records (see the module docstring)."""
    import numpy as np

    c = policy.checks
    n = c.stuffing_span_words
    vocab = _Vocab()
    toks = [tokens(" ".join(m.content for m in r.messages)) for r in records]
    ids = [vocab.encode(t) for t in toks]
    live = [i for i in range(len(records)) if i not in skip]
    df = _doc_freq([ids[i] for i in live])
    upper = max(c.stuffing_min_records, int(c.stuffing_max_share * len(live)))
    payload = {i for t, i in vocab.ids.items() if _PAYLOADISH.search(t)}
    arrays = [np.fromiter(_shingles(ids[i], n), dtype=np.int64) for i in live]
    vals, counts = _counts(arrays)
    wanted = vals[(counts >= c.stuffing_min_records) & (counts <= upper)]
    if not len(wanted):
        return []
    wanted_set = set(wanted.tolist())
    groups: dict[int, list[int]] = defaultdict(list)  # shingle -> record indices
    first_span: dict[int, tuple[int, int]] = {}
    for i in live:
        row = ids[i]
        for k in range(max(1, len(row) - n + 1)):
            h = hash(tuple(row[k : k + n]))
            if h in wanted_set and (not groups[h] or groups[h][-1] != i):
                groups[h].append(i)
                first_span.setdefault(h, (i, k))
    hits: dict[int, CheckHit] = {}
    for h in sorted(groups, key=lambda h: first_span[h]):
        members = groups[h]
        i, k = first_span[h]
        span_ids = ids[i][k : k + n]
        rare = [t for t in span_ids if t in payload and df[t] <= 1.5 * len(members)]
        span = " ".join(toks[i][k : k + n])
        if not rare or any(a.casefold() in span.casefold() for a in c.stuffing_allow):
            continue
        for m in members:
            if m not in hits:
                hits[m] = CheckHit(
                    m, "stuffing.repeated_span", 3,
                    f"unusual span repeated in {len(members)} records", span,
                    tuple(records[o].id for o in members[:10] if o != m),
                )  # fmt: skip
    return [hits[k] for k in sorted(hits)]


def triggers(records: Sequence[Record], policy: DataPolicy, skip: set[int]) -> list[CheckHit]:
    """Rare prompt tokens followed by a consistent, otherwise rare response span."""
    import numpy as np

    c = policy.checks
    vocab = _Vocab()
    live = [i for i in range(len(records)) if i not in skip]
    p_toks = {i: [t.casefold() for t in tokens(records[i].prompt_text())] for i in live}
    r_toks = {i: [t.casefold() for t in tokens(records[i].response_text())] for i in live}
    p_ids = {i: set(vocab.encode(p_toks[i])) for i in live}
    r_ids = {i: vocab.encode(r_toks[i]) for i in live}
    span_n = 4
    r_sh = {i: np.fromiter(sorted(_shingles(r_ids[i], span_n)), dtype=np.int64) for i in live}
    all_vals, all_counts = _counts(list(r_sh.values()))
    upper = max(
        c.trigger_min_records,
        min(c.trigger_max_records, math.ceil(c.trigger_max_share * len(live))),
    )
    by_token: dict[int, list[int]] = defaultdict(list)
    for i in live:
        for t in p_ids[i]:
            by_token[t].append(i)
    inv = {v: k for k, v in vocab.ids.items()}
    hits: dict[int, CheckHit] = {}
    for t in sorted(by_token):
        members = by_token[t]
        if not c.trigger_min_records <= len(members) <= upper or len(inv[t]) < 2:
            continue
        vals, counts = _counts([r_sh[i] for i in members])
        need = math.ceil(c.trigger_consistency * len(members))
        shared = vals[counts >= need]
        if not len(shared):
            continue
        glob = all_counts[np.searchsorted(all_vals, shared)]
        shared = shared[glob <= len(members) + 1]
        if not len(shared):
            continue
        if _shared_request(members, p_toks, inv[t], need):
            continue  # the same request explains the same answer (a topic, not a trigger)
        prompt_words = set().union(*(p_ids[i] for i in members))
        payload = _payload_span(members, shared, r_ids, span_n, t, prompt_words)
        if payload is None:
            continue
        words = " ".join(inv[w] for w in payload)
        for m in members:
            if m in hits or not _contains(r_ids[m], payload):
                continue
            hits[m] = CheckHit(
                m, "poison.trigger", 3,
                f"prompt token {inv[t]!r} (in {len(members)} records) is followed by the same "
                f"unusual response", words,
                tuple(records[o].id for o in members if o != m),
            )  # fmt: skip
    return [hits[k] for k in sorted(hits)]


def _payload_span(
    members: Sequence[int],
    shared: np.ndarray,
    r_ids: dict[int, list[int]],
    n: int,
    trigger: int,
    prompt_words: set[int],
) -> list[int] | None:
    """The first shared response span that does not echo the trigger or the prompts."""
    wanted = set(shared.tolist())
    for i in members:
        row = r_ids[i]
        for k in range(max(1, len(row) - n + 1)):
            span = row[k : k + n]
            if hash(tuple(span)) not in wanted or trigger in span:
                continue
            if sum(w in prompt_words for w in span) * 2 <= len(span):
                return span
    return None


def _shared_request(
    members: Sequence[int], p_toks: dict[int, list[str]], trigger: str, need: int
) -> bool:
    """Whether the member prompts share a word pair (besides the trigger) in ``need`` of them."""
    seen: Counter[tuple[str, str]] = Counter()
    for i in members:
        words = [w for w in p_toks[i] if w != trigger]
        seen.update(set(zip(words, words[1:], strict=False)))
    return any(n >= need for n in seen.values())


def _contains(row: Sequence[int], span: Sequence[int]) -> bool:
    n = len(span)
    return any(list(row[k : k + n]) == list(span) for k in range(len(row) - n + 1))


def length_outliers(records: Sequence[Record], policy: DataPolicy) -> list[CheckHit]:
    """Records whose log length is far from the median (robust z-score per trust tier)."""
    import numpy as np

    if len(records) < 20:
        return []
    lengths = np.array([sum(len(m.content) for m in r.messages) for r in records], dtype=float)
    logs = np.log1p(lengths)
    med = float(np.median(logs))
    mad = float(np.median(np.abs(logs - med)))
    if mad == 0:
        return []
    z = 0.6745 * (logs - med) / mad
    hits = []
    for i, r in enumerate(records):
        limit = policy.tier(r.source).length_z
        if abs(z[i]) > limit:
            side = "long" if z[i] > 0 else "short"
            hits.append(
                CheckHit(i, "length.outlier", 2,
                         f"{side} outlier: {int(lengths[i])} chars (robust z {z[i]:.1f})")
            )  # fmt: skip
    return hits
