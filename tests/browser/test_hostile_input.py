"""Hostile text in descriptions, summaries, links, reasons and addresses stays text.

The pages run no script at all (the Content-Security-Policy forbids inline script), and
what people typed is escaped or sanitized; very long strings wrap instead of widening the page.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, assert_accessible, sign_in
from tests.support.clients import twine_upload
from tests.support.dists import make_wheel

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCRIPT = "<script>alert('summary')</script>"
LONG = "x" * 5000
DESCRIPTION = f"""# Title <script>alert('heading')</script>

<img src=x onerror="alert('img')">
<a href="javascript:alert('raw-link')">raw link</a>
[markdown link](javascript:alert('md-link'))
<iframe src="javascript:alert('iframe')"></iframe>
<svg onload="alert('svg')"></svg>
<form action="https://example.invalid/"><button>go</button></form>

{'y' * 3000}
"""


def _metadata(name: str, version: str, *, urls: list[str]) -> str:
    return "\n".join([
        "Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {SCRIPT} {'z' * 400}",
        *urls, "Author: <b onmouseover=alert('author')>Mallory</b>",
        "Description-Content-Type: text/markdown",
    ]) + "\n\n" + DESCRIPTION


# Links the upload refuses (docs/api.md: an http or https URL, labels of at most 32 characters) ...
REFUSED_URLS = ["Project-URL: Homepage, javascript:alert('project-url')",
                "Project-URL: Docs, https://docs.invalid/\"><script>x</script>",
                "Home-page: data:text/html,<script>alert('home')</script>"]
# ... and hostile ones it takes: a label is free text, a URL may carry quotes.
TAKEN_URLS = ["Project-URL: Doc\"><script>alert(1)</script>, https://docs.invalid/?q='x'",
              "Home-page: https://home.invalid/?a=');alert('home"]


def _no_active_content(page: Page) -> None:
    assert page.locator("script").count() == 0
    assert page.locator("iframe, object, embed, svg, form[action^='https://example']").count() == 0
    assert page.locator("[onerror], [onload], [onclick]").count() == 0
    assert page.locator("a[href^='javascript:'], a[href^='data:']").count() == 0
    wide = page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 1)
            .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
    }""")
    assert wide == [], f"wider than the window on {page.url[:120]}: {wide}"


def test_hostile_metadata_reasons_and_queries_are_shown_as_text(site: Site, page: Page, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for url in REFUSED_URLS:
        refused = make_wheel(tmp_path / "refused", "hostile", "6.6.6", metadata=_metadata("hostile", "6.6.6",
                                                                                          urls=[url]))
        upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token, refused.path)
        assert upload.returncode != 0 and "not a valid http or https URL" in " ".join(upload.stdout.split()), url
    wheel = make_wheel(tmp_path, "hostile", "6.6.6", metadata=_metadata("hostile", "6.6.6", urls=TAKEN_URLS))
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token, wheel.path)
    assert upload.returncode == 0, upload.stdout + upload.stderr

    sign_in(page, site, "admin", site.admin_password)
    page.goto(f"{site.url}/manage/project/hostile/")
    page.get_by_label(f"Reason for yanking {wheel.filename}").fill(f"<script>alert('reason')</script>{LONG}")
    page.get_by_role("button", name=f"Yank file {wheel.filename}").click()
    expect(page.get_by_role("status")).to_contain_text("Yanked")
    page.get_by_label("Why deprecate").fill("\"><img src=x onerror=alert('status')>")
    page.get_by_role("button", name="Deprecate").click()
    expect(page.get_by_role("status")).to_contain_text("Deprecated")
    _no_active_content(page)

    for path in ("/project/hostile/", "/project/hostile/6.6.6/", "/project/hostile/history/",
                 "/search/?q=" + quote("<script>alert('q')</script>"), "/search/?q=" + quote(LONG),
                 "/project/" + quote("<script>") + "/", "/"):
        page.goto(site.url + path)
        _no_active_content(page)

    page.goto(f"{site.url}/project/hostile/")
    expect(page.locator(".lead")).to_contain_text(SCRIPT)  # the summary, as text
    expect(page.locator(".banner.warn")).to_contain_text("<img src=x onerror=alert('status')>")
    expect(page.get_by_text("markdown link")).to_be_visible()  # the link text stays, the href goes
    expect(page.get_by_text("Doc\"><script>alert(1)</script>")).to_be_visible()  # the label, as text
    expect(page.locator(".description h1")).to_contain_text("Title")
    assert_accessible(page)
    page.goto(f"{site.url}/project/hostile/6.6.6/")
    expect(page.locator(".reason").first).to_contain_text("<script>alert('reason')</script>")
    page.goto(f"{site.url}/search/?q=" + quote("<script>alert('q')</script>"))
    expect(page.locator("#site-search")).to_have_value("<script>alert('q')</script>")
    assert dialogs == []


def test_a_description_that_is_not_valid_restructuredtext_is_shown_as_plain_text(site: Site, page: Page,
                                                                                tmp_path: Path) -> None:
    text = "Broken\n=====\n\n.. raw:: html\n\n   <script>alert('rst')</script>\n"
    metadata = ("Metadata-Version: 2.1\nName: brokenrst\nVersion: 1.0\nSummary: broken\n"
                "Description-Content-Type: text/x-rst\n\n" + text)
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token,
                          make_wheel(tmp_path, "brokenrst", "1.0", metadata=metadata).path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    page.goto(f"{site.url}/project/brokenrst/")
    expect(page.locator(".description pre")).to_contain_text("<script>alert('rst')</script>")
    _no_active_content(page)
