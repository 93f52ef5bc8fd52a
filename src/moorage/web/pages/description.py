"""A release's description as safe HTML, the way PyPI renders it (readme-renderer).

readme-renderer sanitizes its output (nh3: no scripts, no event handlers, no javascript:
links). Anything it cannot render is shown as escaped plain text, never as raw HTML.
"""

from __future__ import annotations

import functools
import re
from email.message import Message

from markupsafe import Markup, escape
from readme_renderer import markdown, rst, txt

MAX_DESCRIPTION = 512 * 1024  # longer descriptions are cut before rendering
# GFM puts an empty self-link in every heading: a link without a name to screen readers.
_EMPTY_ANCHOR = re.compile(r'<a href="#user-content-[^"<>]*" rel="nofollow"></a>')
# Fenced code comes out as <pre lang="python">: "python" is not a human language tag.
_CODE_LANG = re.compile(r'<pre lang="([^"<>]*)">')
# An image without alt text is read out as its file name; say what it is instead.
_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)")


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    msg = Message()
    msg["content-type"] = value or "text/x-rst"
    params = {k.lower(): v for k, v in msg.get_params(failobj=[])[1:]} if msg.get_params() else {}
    return msg.get_content_type(), params


@functools.lru_cache(maxsize=512)
def render_description(text: str, content_type: str | None) -> Markup:
    text = text[:MAX_DESCRIPTION]
    kind, params = _content_type(content_type)
    rendered: str | None
    if kind == "text/markdown":
        rendered = markdown.render(text, variant=params.get("variant", "GFM"))
    elif kind == "text/plain":
        rendered = txt.render(text)
    else:
        rendered = rst.render(text)
    if rendered is None:  # invalid reStructuredText: PyPI shows the text as it is
        return Markup("<pre>") + escape(text) + Markup("</pre>")
    rendered = _EMPTY_ANCHOR.sub("", rendered)
    rendered = _CODE_LANG.sub(r'<pre data-language="\1">', rendered)
    return Markup(_IMG_WITHOUT_ALT.sub('<img alt="image from the description"', rendered))
