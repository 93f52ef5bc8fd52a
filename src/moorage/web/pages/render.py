"""Jinja2 templates, the filters they share, and the headers every page carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from moorage import __version__, oplog
from moorage.domain.decisions import NOT_FOUND, Decision, Denied
from moorage.web.statuses import status_of

if TYPE_CHECKING:  # session imports render for its refusal page
    from moorage.web.pages.session import Visitor

# No inline script or style anywhere: the policy forbids both, so injected markup cannot run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def when(value: datetime | None) -> str:
    """24 Nov 2026 09:14 UTC"""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def size(n: int) -> str:
    step = 1024.0
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < step or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= step
    return f"{n} B"


environment = Environment(
    loader=PackageLoader("moorage.web.pages", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=when, iso=iso, size=size)
environment.globals["version"] = __version__


def render(template: str, http_status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    body = environment.get_template(template).render(**context)
    response = HTMLResponse(body, status_code=http_status, headers={**SECURITY_HEADERS, **(headers or {})})
    response.headers["Cache-Control"] = "no-store" if context.get("user") else "no-cache"
    return response


def page(visitor: Visitor, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """A page for this visitor: who is signed in, the form token, any cookie to set."""
    response = render(template, http_status, user=visitor.user, csrf_token=visitor.csrf_token, **context)
    visitor.apply(response)
    return response


def message(visitor: Visitor, title: str, text: str, http_status: int, *, back: str | None = None,
            kind: str = "error") -> HTMLResponse:
    """A page with one message (a refusal by a rule is a ``refusal_page``)."""
    return page(visitor, "message.html", http_status, title=title, message=text, back=back, kind=kind)


def refusal_page(visitor: Visitor, title: str, decision: Decision, *, back: str | None = None,
                 project: str | None = None) -> HTMLResponse:
    """A denied decision as a page: its sentence and rule id, with the status of its rule
    (web/statuses.py); the operator's log has its line."""
    status = status_of(decision)
    if 400 <= status < 500:
        oplog.refused(decision.rule, status, decision.reason, project=project,
                      actor=visitor.user.name if visitor.user else None, page=title)
    return page(visitor, "message.html", status, title=title, message=decision.reason, rule=decision.rule,
                back=back, kind="error")


def denied_page(visitor: Visitor, denied: Denied, *, back: str | None = None,
                project: str | None = None) -> HTMLResponse:
    """What a form's action raised: "Not found" with its sentence (no rule of the policy, not
    logged), or the refusal page."""
    decision = denied.decision
    if decision.rule == NOT_FOUND:
        return message(visitor, "Not found", decision.reason, status_of(decision), back=back)
    return refusal_page(visitor, "Refused", decision, back=back, project=project)
