"""Renderers: one module per format, each ``render(document) -> str`` from the results document
(farm/document.py) alone; formats never import each other (as hyperfine's ``src/export/``).

    table, json, markdown, csv, html   the formats
    summary                            what table, markdown and html show alike
    units                              one unit per column, alignment
"""

from __future__ import annotations

import importlib
from pathlib import Path

from farm.document import Document
from farm.errors import FarmError

FORMATS = ("table", "json", "markdown", "csv", "html")


def render(doc: Document, fmt: str) -> str:
    """The document in one of FORMATS."""
    if fmt not in FORMATS:
        raise FarmError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"farm.render.{fmt}").render(doc)


def default_output(run_id: str, fmt: str) -> str | None:
    """Where a format is written when --output is not given: html goes to a file, the rest to stdout."""
    return f"farm-report-{run_id}.html" if fmt == "html" else None


def write(text: str, output: str) -> str:
    """Write a rendered report; returns the line to show on stderr."""
    path = Path(output)
    try:
        if not path.parent.is_dir():
            raise FarmError(f"cannot write {output}: folder {path.parent} does not exist")
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FarmError(f"cannot write {output}: {exc.strerror or type(exc).__name__}") from None
    return f"wrote {path} ({len(text.encode()) / 1024:.0f} KiB)"
