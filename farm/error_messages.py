"""The most frequent error messages per provider/snippet and error class: what a reader needs
next to a count ("auth=2") to act on it. Read from the raw stream (only failed samples are decoded),
redacted again on the way out, and bounded in memory however many distinct messages a run has."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Iterable

from farm.redact import redact
from farm.samples import SEP

TOP_MESSAGES = 3          # messages kept per provider/snippet and class
DISTINCT_LIMIT = 200      # distinct messages counted per provider/snippet and class
MESSAGE_CHARS = 300       # a message longer than this is cut (with an ellipsis)

Messages = dict[str, dict[str, list[dict[str, Any]]]]  # "provider/snippet" -> class -> [{message, count}]


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def top_messages(entries: Iterable[list[list[Any]]], top: int = TOP_MESSAGES) -> Messages:
    """From batches of raw stream entries ([id, [g, .., k, .., n, .., i, .., x, ..]]): per failed
    provider/snippet and class, the ``top`` most frequent messages, most frequent first."""
    counters: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for batch in entries:
        for _id, fields in batch:
            provider, snippet, warmup, outcome, error_class = fields[1].decode().split(SEP)
            if outcome in ("ok", "skipped") or warmup == "1":
                continue
            text = fields[9].decode() if isinstance(fields[9], bytes) else fields[9]
            message = _short(str(json.loads(text).get("error") or "")) if text else ""
            counter = counters[(f"{provider}/{snippet}", error_class or "unknown")]
            message = message or "(no message recorded)"
            if message in counter or len(counter) < DISTINCT_LIMIT:
                counter[message] += 1
    out: Messages = {}
    for (key, cls), counter in sorted(counters.items()):
        out.setdefault(key, {})[cls] = [{"message": redact(m), "count": n} for m, n in counter.most_common(top)]
    return out


Skips = dict[str, list[dict[str, Any]]]  # "provider/snippet" -> [{reason, count}], most frequent first


def skip_summary(entries: Iterable[list[list[Any]]], top: int = TOP_MESSAGES) -> tuple[int, Skips]:
    """Skipped samples (warm-ups included, as in the run's status counts) and, per measured
    provider/snippet, the ``top`` most frequent reasons. Skipped is its own outcome: the snippet or
    scenario could not be run there (a precondition the provider lacks), which is no failure."""
    total = 0
    counters: dict[str, Counter[str]] = defaultdict(Counter)
    for batch in entries:
        for _id, fields in batch:
            provider, snippet, warmup, outcome, _class = fields[1].decode().split(SEP)
            if outcome != "skipped":
                continue
            total += 1
            if warmup == "1":
                continue
            text = fields[9].decode() if isinstance(fields[9], bytes) else fields[9]
            reason = _short(str(json.loads(text).get("error") or "")) if text else ""
            counter = counters[f"{provider}/{snippet}"]
            reason = reason or "(no reason recorded)"
            if reason in counter or len(counter) < DISTINCT_LIMIT:
                counter[reason] += 1
    return total, {key: [{"reason": redact(r), "count": n} for r, n in counter.most_common(top)]
                   for key, counter in sorted(counters.items())}


def skip_lines(skips: Skips) -> list[str]:
    """``provider · snippet ×n: reason`` per kept reason, for text renderers."""
    return [f"{key.replace('/', ' · ', 1)} ×{s['count']}: {s['reason']}" for key, items in skips.items() for s in items]


def message_lines(messages: Messages) -> list[str]:
    """``provider/snippet class ×n: message`` per kept message, for text renderers."""
    return [f"{key} {cls} ×{m['count']}: {m['message']}"
            for key, classes in messages.items() for cls, items in classes.items() for m in items]
