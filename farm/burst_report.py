"""What a burst run's report says about its bursts (docs/scenarios.md, burst): per provider, the
groups released, the spread between each group's first and last start (kept in Redis by the
barrier), and the samples' start skew against the release instant (from the samples)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def burst_summary(groups: Mapping[str, Mapping[str, int]], samples: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """provider -> {groups: [{group, size, arrived, started, spread_ms}], spread_ms_max, skew_ms
    {p50, p95, max}, in_burst, late, not_released}; ``groups`` from Store.burst_groups."""
    import numpy as np

    out: dict[str, Any] = {}
    skews: dict[str, list[float]] = {}
    for s in samples:
        record = s.get("burst")
        if not record or s.get("warmup"):
            continue
        entry = out.setdefault(s["provider"], {"groups": [], "in_burst": 0, "late": 0, "not_released": 0})
        if record.get("timeout") or record.get("group") is None:
            entry["not_released"] += 1
            continue
        entry["in_burst"] += 1
        entry["late"] += bool(record.get("late"))
        if record.get("skew_ms") is not None and not record.get("late"):
            skews.setdefault(s["provider"], []).append(float(record["skew_ms"]))
    for key, group in groups.items():
        provider, _, number = key.rpartition(":")
        entry = out.setdefault(provider, {"groups": [], "in_burst": 0, "late": 0, "not_released": 0})
        entry["groups"].append({"group": int(number), "size": group.get("size"), "arrived": group.get("arrived"),
                                "started": group.get("started"),
                                "spread_ms": group["spread_ns"] / 1e6 if "spread_ns" in group else None})
    for provider, entry in out.items():
        entry["groups"].sort(key=lambda g: g["group"])
        spreads = [g["spread_ms"] for g in entry["groups"] if g["spread_ms"] is not None]
        entry["spread_ms_max"] = max(spreads) if spreads else None
        values = np.asarray(skews.get(provider, []))
        entry["skew_ms"] = ({"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
                             "max": float(values.max())} if values.size else None)
    return dict(sorted(out.items()))


def burst_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """One line per provider for the table and markdown reports."""
    lines = []
    for provider, e in (summary or {}).items():
        sizes = sorted({g["size"] for g in e["groups"] if g["size"]})
        spread = "no spread recorded" if e["spread_ms_max"] is None else \
            f"largest spread (first to last start) {e['spread_ms_max']:.1f} ms"
        skew = "" if not e["skew_ms"] else \
            f"; start skew p50 {e['skew_ms']['p50']:.1f} / p95 {e['skew_ms']['p95']:.1f} / max {e['skew_ms']['max']:.1f} ms"
        extra = "".join(f"; {n} {what}" for n, what in ((e["late"], "late"), (e["not_released"], "in no burst")) if n)
        lines.append(f"burst {provider}: {len(e['groups'])} group(s) of {'/'.join(map(str, sizes)) or '?'}, "
                     f"{e['in_burst']} released; {spread}{skew}{extra}")
    return lines
