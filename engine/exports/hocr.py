"""hOCR 1.2 (http://kba.github.io/hocr-spec/1.2/): one ``ocr_page`` per page, the lines in
reading order (each its own ``ocr_carea`` and ``ocr_par``: the answer does not group lines into
blocks), each line's words (``document.words_of``) as ``ocrx_word`` (parted by a space only where
the text has one) with every character's box (``x_bboxes``) and confidence (``x_confs``, 0-100)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .document import Page, line_angle, words_of

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_table ocrp_wconf ocrp_poly"


def _box(box) -> str:
    return " ".join(str(int(round(v))) for v in box)


def _conf(value: float | None) -> str:
    return f"{100 * (value if value is not None else 1.0):.2f}"


def _line(line: dict, ids: str) -> str:
    props = [f"bbox {_box(line['box'])}"]
    angle = line_angle(line)
    if angle:
        props.append(f"textangle {angle:.2f}")
    if line.get("polygon"):
        props.append("poly " + " ".join(str(int(round(v))) for point in line["polygon"] for v in point))
    props.append(f"x_wconf {_conf(line.get('confidence'))}")
    words = []
    for k, word in enumerate(words_of(line), 1):
        wprops = [f"bbox {_box(word.box)}", f"x_wconf {_conf(word.confidence)}"]
        if word.chars:
            wprops.append("x_bboxes " + " ".join(_box(c["box"]) for c in word.chars))
            wprops.append("x_confs " + " ".join(_conf(c["confidence"]) for c in word.chars))
        words.append(
            f'<span class="ocrx_word" id="word_{ids}_{k}" title={quoteattr("; ".join(wprops))}>'
            f"{escape(word.text)}</span>" + (" " if word.space_after else "")
        )
    return (
        f'<div class="ocr_carea" id="block_{ids}" title="bbox {_box(line["box"])}">'
        f'<p class="ocr_par" id="par_{ids}" title="bbox {_box(line["box"])}">'
        f'<span class="ocr_line" id="line_{ids}" title={quoteattr("; ".join(props))}>'
        + "".join(words).rstrip()
        + "</span></p></div>"
    )


def _table(table: dict, ids: str) -> str:
    """A ruled table's structure as an ``ocr_table`` float: its cells' places and spans (their text
    is in the lines, which stay where they are so the text is not there twice)."""
    rows = []
    for r in range(table["rows"]):
        tds = "".join(
            f'<td title="bbox {_box(c["bbox"])}"'
            + (f' rowspan="{c["row_span"]}"' if c["row_span"] > 1 else "")
            + (f' colspan="{c["col_span"]}"' if c["col_span"] > 1 else "")
            + "></td>"
            for c in sorted((c for c in table["cells"] if c["row"] == r), key=lambda c: c["col"])
        )
        rows.append(f"<tr>{tds}</tr>")
    return f'<table class="ocr_table" id="table_{ids}" title="bbox {_box(table["bbox"])}">' + "".join(rows) + "</table>"


def to_hocr(pages: list[Page], title: str = "", system: str = "ocr-platform", tables: list[dict] = ()) -> str:
    """The pages as one hOCR document (XHTML, UTF-8), with the ruled tables' structure."""
    body = []
    for page in pages:
        image = 'image "{}"; '.format(title.replace('"', "'")) if title else ""
        props = f"{image}bbox 0 0 {page.width} {page.height}; ppageno {page.number - 1}"
        lines = "\n".join(_line(line, f"{page.number}_{i}") for i, line in enumerate(page.lines, 1))
        mine = [t for t in tables if t.get("page", 1) == page.number]
        lines += "".join("\n" + _table(t, f"{page.number}_{k}") for k, t in enumerate(mine, 1))
        body.append(f'<div class="ocr_page" id="page_{page.number}" title={quoteattr(props)}>\n{lines}\n</div>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="zh" lang="zh">\n<head>\n'
        f"<title>{escape(title)}</title>\n"
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />\n'
        f'<meta name="ocr-system" content={quoteattr(system)} />\n'
        f'<meta name="ocr-capabilities" content="{CAPABILITIES}" />\n'
        f'<meta name="ocr-number-of-pages" content="{len(pages)}" />\n'
        '<meta name="ocr-langs" content="zh en" />\n'
        "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
