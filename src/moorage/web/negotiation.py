"""Content negotiation for the simple API (PEP 691), as pip and uv send ``Accept``."""

from __future__ import annotations

from functools import lru_cache

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Server preference when the client weighs two types the same.
_PREFERENCE = (JSON_V1, HTML_V1, TEXT_HTML)


@lru_cache(maxsize=256)
def choose(accept: str | None) -> str:
    """The media type to answer with; no Accept or nothing acceptable -> text/html."""
    if not accept:
        return TEXT_HTML
    best: tuple[float, int, int] | None = None
    chosen = TEXT_HTML
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = _ALIASES.get(fields[0].lower(), fields[0].lower())
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN: an unreadable weight is no weight
                    q = 0.0
        if q <= 0:
            continue
        if media in _PREFERENCE:
            candidates = [(media, 2)]
        elif media in ("*/*", "application/*"):
            # A wildcard stands for the format every client understands.
            candidates = [(TEXT_HTML if media == "*/*" else JSON_V1, 0)]
        elif media == "text/*":
            candidates = [(TEXT_HTML, 1)]
        else:
            continue
        for cand, specificity in candidates:
            key = (q, specificity, -_PREFERENCE.index(cand))
            if best is None or key > best:
                best, chosen = key, cand
    return chosen
