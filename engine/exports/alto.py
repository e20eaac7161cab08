"""ALTO 4.4 (https://www.loc.gov/standards/alto/): in pixels, one ``Page`` per page, each line a
``TextBlock`` (turned by the line's angle) of one ``TextLine`` (its polygon as a ``Shape`` where the detector found one), its
words (``document.words_of``) as ``String`` elements with their confidence (``WC``), every
character a ``Glyph`` with its box and confidence (``GC``), and an ``SP`` where the text has a
space. The lines of a ruled table are grouped in a ``ComposedBlock`` of ``TYPE="table"``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .document import Page, line_angle, words_of

NS = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _geometry(box) -> dict[str, str]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return {"HPOS": str(x0), "VPOS": str(y0), "WIDTH": str(max(0, x1 - x0)), "HEIGHT": str(max(0, y1 - y0))}


def _conf(value: float | None) -> str:
    return f"{min(1.0, max(0.0, value if value is not None else 1.0)):.4f}"


def _line(parent: ET.Element, line: dict, ids: str) -> None:
    words = words_of(line)
    if not words:
        return
    attrs = {"ID": f"block_{ids}", **_geometry(line["box"])}
    angle = line_angle(line)
    if angle:  # ALTO turns blocks, not lines: each line is its own block here
        attrs["ROTATION"] = f"{angle:.2f}"
    block = ET.SubElement(parent, "TextBlock", attrs)
    text_line = ET.SubElement(block, "TextLine", {"ID": f"line_{ids}", **_geometry(line["box"])})
    if line.get("polygon"):
        points = " ".join(f"{round(x)},{round(y)}" for x, y in line["polygon"])
        ET.SubElement(ET.SubElement(text_line, "Shape"), "Polygon", {"POINTS": points})
    for k, word in enumerate(words, 1):
        attrs = {"ID": f"string_{ids}_{k}", "CONTENT": word.text, **_geometry(word.box), "WC": _conf(word.confidence)}
        string = ET.SubElement(text_line, "String", attrs)
        for g, char in enumerate(word.chars, 1):
            glyph = {"ID": f"glyph_{ids}_{k}_{g}", "CONTENT": char["text"], **_geometry(char["box"])}
            ET.SubElement(string, "Glyph", {**glyph, "GC": _conf(char["confidence"])})
        if word.space_after and k < len(words):
            nxt = words[k].box
            gap = (word.box[2], word.box[1], max(word.box[2], nxt[0]), word.box[3])
            ET.SubElement(text_line, "SP", {key: v for key, v in _geometry(gap).items() if key != "HEIGHT"})


def _table_block(space: ET.Element, table: dict, ids: str) -> ET.Element:
    attrs = {"ID": f"table_{ids}", "TYPE": "table", **_geometry(table["bbox"])}
    return ET.SubElement(space, "ComposedBlock", attrs)


def _container(space: ET.Element, line: dict, tables: list[dict], blocks: dict, page: int) -> ET.Element:
    """Where a line goes: the ``ComposedBlock`` of the ruled table its centre lies in (made at the
    table's first line), else the print space."""
    x0, y0, x1, y1 = line["box"]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for k, table in enumerate(tables, 1):
        tx0, ty0, tx1, ty1 = table["bbox"]
        if tx0 <= cx <= tx1 and ty0 <= cy <= ty1:
            if k not in blocks:
                blocks[k] = _table_block(space, table, f"{page}_{k}")
            return blocks[k]
    return space


def to_alto(pages: list[Page], filename: str = "", software: str = "ocr-platform", tables: list[dict] = ()) -> bytes:
    """The pages as one ALTO 4.4 document (UTF-8 bytes); the lines of each ruled table grouped in a
    ``ComposedBlock`` of ``TYPE="table"`` over the table's area."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(f"{{{NS}}}alto", {f"{{{XSI}}}schemaLocation": f"{NS} {SCHEMA}"})
    description = ET.SubElement(root, f"{{{NS}}}Description")
    ET.SubElement(description, f"{{{NS}}}MeasurementUnit").text = "pixel"
    source = ET.SubElement(description, f"{{{NS}}}sourceImageInformation")
    ET.SubElement(source, f"{{{NS}}}fileName").text = filename
    processing = ET.SubElement(description, f"{{{NS}}}OCRProcessing", {"ID": "ocr_1"})
    step = ET.SubElement(processing, f"{{{NS}}}ocrProcessingStep")
    soft = ET.SubElement(step, f"{{{NS}}}processingSoftware")
    ET.SubElement(soft, f"{{{NS}}}softwareName").text = software
    layout = ET.SubElement(root, f"{{{NS}}}Layout")
    for page in pages:
        size = {"WIDTH": str(page.width), "HEIGHT": str(page.height)}
        attrs = {"ID": f"page_{page.number}", "PHYSICAL_IMG_NR": str(page.number), **size}
        el = ET.SubElement(layout, f"{{{NS}}}Page", attrs)
        space = ET.SubElement(el, f"{{{NS}}}PrintSpace", {"HPOS": "0", "VPOS": "0", **size})
        mine, blocks = [t for t in tables if t.get("page", 1) == page.number], {}
        for i, line in enumerate(page.lines, 1):
            _line(_container(space, line, mine, blocks, page.number), line, f"{page.number}_{i}")
    _qualify(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _qualify(root: ET.Element) -> None:
    """Put the elements ``_line`` made without a namespace into ALTO's."""
    for el in root.iter():
        if not el.tag.startswith("{"):
            el.tag = f"{{{NS}}}{el.tag}"
