"""The terminal table: ``farm run``, ``farm watch`` and ``farm report --format table``."""

from __future__ import annotations

from farm.document import Document
from farm.error_messages import message_lines
from farm.render.summary import cost_lines, error_counts, left_columns, table, warnings
from farm.render.units import aligned


def render(doc: Document) -> str:
    headers, rows = table(doc)
    st = doc.status
    out = [f"run {doc.run_id}  {st.state}  {st.ok} ok / {st.failed} failed of {st.planned}",
           *aligned(headers, rows, left_columns(headers))]
    out += [f"errors {line}" for line in error_counts(doc)]
    out += [f"  {line}" for line in message_lines(doc.error_messages)]
    out += cost_lines(doc)
    out += [f"warning: {w}" for w in warnings(doc)]
    return "\n".join(out)
