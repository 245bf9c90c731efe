"""The terminal table: ``farm run``, ``farm watch`` and ``farm report --format table``.

Rows are grouped per provider × snippet under a line that names the pair and its error rate, so
the phase rows carry only what differs per phase; the default columns fit 120 characters."""

from __future__ import annotations

from typing import Sequence

from farm.document import Document
from farm.error_messages import message_lines, skip_lines
from farm.burst_report import burst_lines
from farm.render.summary import outcome_counts, cost_lines, error_counts, headline_lines, table, warnings
from farm.render.units import aligned


def table_lines(doc: Document, columns: Sequence[str] | None = None) -> list[str]:
    """The summary table alone: header, rule, and each pair's line followed by its phase rows."""
    summary = table(doc, columns, grouped=True)
    head, rule, *body = aligned(summary.headers, summary.rows, summary.left)
    out = [head, rule]
    for i, line in enumerate(body):
        if i in summary.groups:
            provider, snippet, errors = summary.groups[i]
            out.append(f"{provider} · {snippet}" + (f" — {errors}" if errors else ""))
        out.append(line)
    return out


def render(doc: Document, columns: Sequence[str] | None = None) -> str:
    st = doc.status
    out = [f"run {doc.run_id}  {st.state}  {outcome_counts(st)} of {st.planned}",
           *table_lines(doc, columns)]
    out += [f"summary: {line}" for line in headline_lines(doc)]
    out += [f"note: {line}" for line in table(doc, columns).notes]
    out += [f"errors {line}" for line in error_counts(doc)]
    out += [f"  {line}" for line in message_lines(doc.error_messages)]
    out += [f"skipped {line}" for line in skip_lines(doc.skipped)]
    out += cost_lines(doc) + burst_lines(doc.burst)
    out += [f"warning: {w}" for w in warnings(doc)]
    return "\n".join(out)

