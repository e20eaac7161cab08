"""An answer's ruled tables (``engine.tables``) as CSV and as HTML."""

from __future__ import annotations

import csv
import io
from html import escape


def grid(table: dict) -> list[list[str]]:
    """The table as rows of strings: a merged cell's text at its top-left place, the places it
    also covers empty."""
    rows = [["" for _ in range(table["cols"])] for _ in range(table["rows"])]
    for cell in table["cells"]:
        rows[cell["row"]][cell["col"]] = cell.get("text", "")
    return rows


def to_csv(tables: list[dict]) -> str:
    """Every table's rows (RFC 4180 quoting, a cell's lines kept inside its quotes), tables parted
    by an empty line."""
    out = io.StringIO()
    for i, table in enumerate(tables):
        if i:
            out.write("\r\n")
        csv.writer(out).writerows(grid(table))
    return out.getvalue()


def to_html(tables: list[dict], title: str = "") -> str:
    """One HTML document with every table, merged cells as ``rowspan``/``colspan``, each cell's
    place on the page in its ``data-bbox``."""
    parts = []
    for i, table in enumerate(tables, 1):
        where = f" (page {table['page']})" if "page" in table else ""
        rows = []
        for r in range(table["rows"]):
            cells = sorted((c for c in table["cells"] if c["row"] == r), key=lambda c: c["col"])
            tds = "".join(
                f"<td{_span('rowspan', c['row_span'])}{_span('colspan', c['col_span'])}"
                f' data-bbox="{" ".join(str(v) for v in c["bbox"])}">'
                + escape(c.get("text", "")).replace("\n", "<br>")
                + "</td>"
                for c in cells
            )
            rows.append(f"<tr>{tds}</tr>")
        parts.append(f"<table><caption>Table {i}{where}</caption>\n" + "\n".join(rows) + "\n</table>")
    return (
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>table{border-collapse:collapse;margin:1em 0}td{border:1px solid #888;padding:4px}</style>"
        "</head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def _span(name: str, value: int) -> str:
    return f' {name}="{value}"' if value > 1 else ""
