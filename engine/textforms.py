"""Full-width punctuation for recognisers that read in NFKC forms.

Our own recognisers are trained on NFKC-normalised labels, so they answer ``:``
where a Chinese document prints ``：`` and ``(`` where it prints ``（``. Chinese
typesetting (GB/T 15834) sets punctuation inside Chinese text full width and
keeps it half width around digits and Latin words, so the printed form follows
from the neighbouring characters. ``restore_full_width`` puts it back.

It only ever replaces a character by the full-width form whose NFKC form it is,
so ``NFKC(restore_full_width(s)) == s`` for every NFKC-normalised ``s``: scoring
after NFKC sees no change. Percent signs, currency signs, digits and letters
stay half width (``13%``, ``¥1,234.00``, ``No.5``), as they are printed.
"""

from __future__ import annotations

# ocr.text_forms values: what the model's classes emit
TEXT_FORMS_AS_IS = "as_is"  # the printed forms; nothing to restore
TEXT_FORMS_NFKC = "nfkc"  # NFKC forms; restore full-width punctuation in Chinese context
TEXT_FORMS = (TEXT_FORMS_AS_IS, TEXT_FORMS_NFKC)

FULL = {",": "，", ":": "：", ";": "；", "!": "！", "?": "？", "(": "（", ")": "）"}


def is_chinese(c: str | None) -> bool:
    """Han characters, CJK symbols and punctuation (。、《》…), and the full-width forms block."""
    if not c:
        return False
    o = ord(c)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F
        or 0xFF01 <= o <= 0xFF60
        or 0xFFE0 <= o <= 0xFFE6
    )


def _neighbour(text, i: int, step: int) -> str | None:
    """The nearest character to the left (step -1) or right (step 1) of ``i`` that is not a space."""
    j = i + step
    while 0 <= j < len(text):
        if not text[j].isspace():
            return text[j]
        j += step
    return None


def _ascii_alnum(c: str | None) -> bool:
    return c is not None and c.isascii() and c.isalnum()


def restore_full_width(text: str) -> str:
    """Full-width ``，：；！？（）`` where the punctuation sits in Chinese text."""
    out = list(text)
    opened: list[bool] = []  # for each open "(": whether it became "（"
    for i, c in enumerate(text):
        if c not in FULL:
            continue
        # the left neighbour as already restored, so "（大写）:" reads the colon after "）"
        left, right = _neighbour(out, i, -1), _neighbour(text, i, 1)
        if c == "(":
            full = is_chinese(left) or is_chinese(right)
            opened.append(full)
        elif c == ")":
            full = opened.pop() if opened else is_chinese(left) or is_chinese(right)
        elif c == ",":
            full = (is_chinese(left) or is_chinese(right)) and not (
                left and left.isdigit() and right and right.isdigit()
            )
        elif c == ":":
            # after a Chinese field name ("名称:"), or before Chinese text when nothing Latin
            # or numeric precedes it; never in times ("12:30") or after Latin ("Tel:")
            full = is_chinese(left) or (is_chinese(right) and not _ascii_alnum(left))
        else:  # ; ! ?
            full = is_chinese(left) or is_chinese(right)
        if full:
            out[i] = FULL[c]
    return "".join(out)


def finish_text(text: str, text_forms: str) -> str:
    """What a recogniser's decoded line becomes in an answer, given its ``ocr.text_forms``."""
    return restore_full_width(text) if text_forms == TEXT_FORMS_NFKC else text
