"""A second renderer beside PIL/FreeType: Pango with HarfBuzz shaping, drawn by cairo.

Its hinting, antialiasing, sub-pixel placement and synthetic slant differ from PIL's, and it
draws natively at small sizes. The out-of-distribution suite renders with it (``distill.ood``)
and so does a share of the "wide" training mix (``distill.render.render_line_wide``), each
with its own fonts: fontconfig is pointed at one folder (``use_only_fonts_in``), so a missing
glyph never falls back to a face of the other pool.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def use_only_fonts_in(font_dir: Path) -> None:
    """Point fontconfig at ``font_dir`` alone, so nothing falls back to another pool's font.
    Fontconfig reads this once per process, when Pango first lays out text."""
    conf = Path(font_dir) / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"  <dir>{Path(font_dir).resolve()}</dir>\n  <cachedir>{Path(font_dir).resolve() / 'cache'}</cachedir>\n"
        "</fontconfig>\n",
        encoding="utf-8",
    )
    os.environ["FONTCONFIG_FILE"] = str(conf.resolve())


def _markup_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _markup(text: str, spacing: int, latin_family: str | None) -> str | None:
    """Pango markup for letter spacing and a Latin family on the ASCII runs; None when plain text will do."""
    if not spacing and not latin_family:
        return None
    body = _markup_escape(text)
    if latin_family:
        import re

        body = re.sub(
            r"([\x21-\x7e]+(?: [\x21-\x7e]+)*)",
            lambda m: f'<span font_family="{latin_family}">{m.group(1)}</span>',
            body,
        )
    return f'<span letter_spacing="{spacing}">{body}</span>' if spacing else body


class PangoLine:
    """Draws one line of text with Pango/HarfBuzz into a grayscale array (black on white)."""

    def __init__(self) -> None:
        import cairocffi
        import pangocairocffi
        import pangocffi

        self.cairo, self.pc, self.pango = cairocffi, pangocairocffi, pangocffi

    def draw(
        self,
        text: str,
        face,
        em_px: float,
        rng: np.random.Generator,
        latin_family: str | None = None,
        bold: bool | None = None,
    ) -> np.ndarray:
        """``face`` has ``family`` and ``style``; ``latin_family`` draws the ASCII runs in another
        family, as documents set Latin in a Latin font; ``bold`` overrides the face's style
        (a regular-only face is then emboldened by cairo)."""
        pango = self.pango
        options = self._font_options(rng)
        desc = self._font_description(face, em_px, rng, bold)
        spacing = int(pango.units_from_double(float(rng.uniform(-0.03, 0.15)) * em_px)) if rng.random() < 0.25 else 0
        marked = _markup(text, spacing, latin_family)
        return self._paint(lambda ctx: self._layout_on(ctx, text, options, desc, marked), rng)

    def _font_options(self, rng: np.random.Generator):
        """Antialiasing, hint style and hint metrics, drawn at random."""
        cairo = self.cairo
        options = cairo.FontOptions()
        options.set_antialias(
            [cairo.ANTIALIAS_GRAY, cairo.ANTIALIAS_SUBPIXEL, cairo.ANTIALIAS_DEFAULT][int(rng.integers(3))]
        )
        options.set_hint_style(
            [cairo.HINT_STYLE_NONE, cairo.HINT_STYLE_SLIGHT, cairo.HINT_STYLE_FULL][int(rng.integers(3))]
        )
        options.set_hint_metrics([cairo.HINT_METRICS_ON, cairo.HINT_METRICS_OFF][int(rng.integers(2))])
        return options

    def _font_description(self, face, em_px: float, rng: np.random.Generator, bold: bool | None):
        """``face`` at ``em_px``, bold as asked, now and then with a synthesised slant."""
        pango = self.pango
        desc = pango.FontDescription()
        desc.family = face.family
        heavy = face.style == "Bold" if bold is None else bold
        desc.weight = pango.Weight.BOLD if heavy else pango.Weight.NORMAL
        if rng.random() < 0.1:
            desc.style = pango.Style.OBLIQUE  # synthesised slant
        desc.set_absolute_size(pango.units_from_double(em_px))
        return desc

    def _layout_on(self, ctx, text: str, options, desc, marked: str | None):
        """A layout of ``text`` (or of its markup) on ``ctx``."""
        ctx.set_font_options(options)  # pangocairo takes hinting and antialiasing from the context
        layout = self.pc.create_layout(ctx)
        layout.font_description = desc
        if marked is None:
            layout.text = text
        else:
            layout.apply_markup(marked)
        return layout

    def _paint(self, layout_on, rng: np.random.Generator) -> np.ndarray:
        """Measure the layout on a probe, then draw it black on white at a sub-pixel offset, as grayscale."""
        cairo, pc, pango = self.cairo, self.pc, self.pango
        probe = cairo.Context(cairo.ImageSurface(cairo.FORMAT_RGB24, 1, 1))
        _, logical = layout_on(probe).get_extents()
        width = int(np.ceil(pango.units_to_double(logical.width))) + 8
        height = int(np.ceil(pango.units_to_double(logical.height))) + 8
        surface = cairo.ImageSurface(cairo.FORMAT_RGB24, width, height)
        ctx = cairo.Context(surface)
        ctx.set_source_rgb(1, 1, 1)
        ctx.paint()
        ctx.set_source_rgb(0, 0, 0)
        x = 4 + float(rng.uniform(0, 1))  # sub-pixel position
        ctx.move_to(x - pango.units_to_double(logical.x), 4 + float(rng.uniform(0, 1)))
        pc.show_layout(ctx, layout_on(ctx))
        surface.flush()
        bgrx = np.frombuffer(surface.get_data(), np.uint8).reshape(height, surface.get_stride() // 4, 4)[:, :width]
        gray = 0.114 * bgrx[..., 0] + 0.587 * bgrx[..., 1] + 0.299 * bgrx[..., 2]
        return np.clip(gray, 0, 255).astype(np.uint8)
