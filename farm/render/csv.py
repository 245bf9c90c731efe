"""``farm report --format csv``: the raw samples, one row per sample, streamed from the document's
sample source; an empty cell is a missing value, never a zero."""

from __future__ import annotations

import csv
import io
import json

from farm.document import Document
from farm.samples import SAMPLE_FIELDS

COLUMNS = ("run_id", *SAMPLE_FIELDS)


def render(doc: Document) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for sample in doc.iter_samples():
        row = {k: ("" if v is None else json.dumps(v) if isinstance(v, dict) else v) for k, v in sample.items()}
        writer.writerow({"run_id": doc.run_id, **row})
    return buf.getvalue()
