"""Renderers: one module per format, each ``render(document) -> str`` from the results document
(farm/document.py) alone; formats never import each other (as hyperfine's ``src/export/``).

    table, json, markdown, csv, html   the formats
    summary                            what table, markdown and html show alike
    units                              units and digits per row, alignment
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Sequence

from farm.document import Document
from farm.errors import ConfigError

FORMATS = ("table", "json", "markdown", "csv", "html")


# The formats that show the summary table, and so take ``columns`` (farm/render/summary.py COLUMNS).
TABLE_FORMATS = ("table", "markdown", "html")


def render(doc: Document, fmt: str, columns: Sequence[str] | None = None) -> str:
    """The document in one of FORMATS; ``columns`` chooses the summary table's columns."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"farm.render.{fmt}")
    if columns is None:
        return module.render(doc)
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"--columns chooses the summary table's columns: use it with --format "
                        f"{', '.join(TABLE_FORMATS)}, not {fmt}")
    return module.render(doc, columns)


def default_output(run_id: str, fmt: str) -> str | None:
    """Where a format is written when --output is not given: html goes to a file, the rest to stdout."""
    return f"farm-report-{run_id}.html" if fmt == "html" else None


def write(text: str, output: str) -> str:
    """Write a rendered report; returns the line to show on stderr."""
    path = Path(output)
    try:
        if not path.parent.is_dir():
            raise ConfigError(f"cannot write {output}: folder {path.parent} does not exist")
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or type(exc).__name__}") from None
    return f"wrote {path} ({len(text.encode()) / 1024:.0f} KiB)"
