"""``farm report --format markdown``: the summary table for a pull request or an issue."""

from __future__ import annotations

from typing import Sequence

from farm.document import Document
from farm.error_messages import message_lines
from farm.burst_report import burst_lines
from farm.render.summary import cost_lines, error_counts, headline_lines, table, warnings


def render(doc: Document, columns: Sequence[str] | None = None) -> str:
    summary = table(doc, columns)
    out = [f"### Sandbox Farm run `{doc.run_id}`", "",
           "| " + " | ".join(summary.headers) + " |",
           "|" + "|".join(":--" if i in summary.left else "--:" for i in range(len(summary.headers))) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in summary.rows]
    out += [""] + [f"{line}  " for line in summary.notes]
    if doc.headline:
        out += ["", "**Providers side by side:**", *(f"- {line}" for line in headline_lines(doc))]
    if doc.errors_by_class:
        out.append("\n**Errors by class:** " + "; ".join(error_counts(doc)))
        out += [f"- `{line}`" if i else f"\n- `{line}`" for i, line in enumerate(message_lines(doc.error_messages))]
    for line in cost_lines(doc) + burst_lines(doc.burst):
        out.append(f"\n{line}")
    for w in warnings(doc):
        out.append(f"\n> ⚠ {w}")
    return "\n".join(out)
