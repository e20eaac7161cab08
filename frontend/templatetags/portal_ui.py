"""``{% ui "key" %}`` and ``{% ui_catalog as table %}``: the portal's strings in
the active language (see frontend/strings.py)."""

from django import template
from django.utils.translation import get_language

from frontend.strings import catalog

register = template.Library()


@register.simple_tag
def ui(key, **params):
    """One UI string; ``{% ui "limits_hint" size="10 MB" %}`` fills ``{size}``."""
    text = catalog(get_language())[key]
    return text.format(**params) if params else text


@register.simple_tag
def ui_catalog():
    """The whole table for the active language, for ``json_script``."""
    return catalog(get_language())
