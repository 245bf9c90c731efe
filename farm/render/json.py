"""``farm report --format json`` (and ``farm run --json``): the document itself, see
docs/results-format.md."""

from __future__ import annotations

import json

from farm.document import Document


def render(doc: Document) -> str:
    return json.dumps(doc.to_json(), indent=2, default=str)
