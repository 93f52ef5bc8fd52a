"""The pages for people, in Debian's chromium: a maintainer's day, an admin's, and refusals.

The server is real (a subprocess on loopback) and its clock is moved by the test, not slept
through. Every page visited is checked with axe-core for serious and critical problems.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, assert_accessible, screenshot, sign_in
from tests.support.clients import twine_upload
from tests.support.dists import make_sdist, make_wheel, metadata_text
from tests.support.server import http_status

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESCRIPTION = """# Widgets

Widgets for **everyone**.

```python
import widgets
```
"""



def _simple(url: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.load(resp))


def test_a_maintainers_day_sign_in_token_upload_yank_window_archive(site: Site, page: Page, tmp_path: Path) -> None:
    site.add_user("alice", "correct horse battery staple")
    sign_in(page, site, "alice", "correct horse battery staple")
    assert_accessible(page)

    # A token made in the browser, shown once, used by twine.
    page.get_by_label("Description").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("moorage-")
    expect(page.get_by_text("shown only once")).to_be_visible()
    assert_accessible(page)
    page.goto(f"{site.url}/account/")
    assert token not in page.content()  # only once
    expect(page.get_by_role("cell", name="laptop")).to_be_visible()

    dist = tmp_path / "dist"
    wheel = make_wheel(dist, "widgets", "1.0", metadata=metadata_text("widgets", "1.0", summary="Widgets for all",
                                                                      description=DESCRIPTION))
    sdist = make_sdist(dist, "widgets", "1.0")
    upload = twine_upload(f"{site.url}/legacy/", token, wheel.path, sdist.path)
    assert upload.returncode == 0, upload.stdout + upload.stderr

    # Revoked in the browser, the token no longer uploads.
    page.goto(f"{site.url}/account/")
    token_id = token.split("-")[1]
    page.get_by_role("button", name=f"Revoke token {token_id}").click()
    expect(page.get_by_role("row").filter(has_text=token_id)).to_contain_text("revoked")
    refused = twine_upload(f"{site.url}/legacy/", token, make_wheel(dist, "widgets", "1.0.1").path)
    assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr, refused.stdout + refused.stderr

    page.goto(f"{site.url}/project/widgets/")
    expect(page.locator("main > h1")).to_contain_text("widgets")
    expect(page.get_by_text("Widgets for all")).to_be_visible()
    expect(page.locator(".description strong")).to_have_text("everyone")
    expect(page.get_by_role("link", name=wheel.filename)).to_be_visible()
    expect(page.get_by_text(wheel.sha256)).to_be_visible()
    expect(page.locator("pre.install")).to_contain_text("widgets==1.0")
    assert_accessible(page)

    # Yank one file with a reason; the public pages mark it.
    page.goto(f"{site.url}/manage/project/widgets/")
    assert_accessible(page)
    page.get_by_label(f"Reason for yanking {wheel.filename}").fill("broken on Windows")
    page.get_by_role("button", name=f"Yank file {wheel.filename}").click()
    expect(page.get_by_role("status")).to_contain_text("Yanked")
    page.goto(f"{site.url}/project/widgets/1.0/")
    row = page.get_by_role("row").filter(has_text=wheel.filename)
    expect(row.locator(".badge")).to_have_text("yanked")
    expect(row).to_contain_text("broken on Windows")
    assert_accessible(page)

    # Within the deletion window the delete button works and says until when...
    page.goto(f"{site.url}/manage/project/widgets/")
    delete = page.get_by_role("button", name=f"Delete file {sdist.filename}")
    expect(delete).to_be_enabled()
    expect(page.locator("p.why.ok").filter(has_text="deletable until").first).to_be_visible()
    # ...and past it, it is disabled with the rule's sentence and the date it closed.
    site.move_clock(timedelta(hours=73))
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # sessions last 12 hours
    sign_in(page, site, "alice", "correct horse battery staple")
    page.goto(f"{site.url}/manage/project/widgets/")
    expect(delete).to_be_disabled()
    described = delete.get_attribute("aria-describedby")
    assert described
    why = page.locator(f"#{described}")
    expect(why).to_contain_text("files may be deleted within 72 hours of upload")
    expect(why).to_contain_text(f"{sdist.filename} was uploaded")
    expect(why).to_contain_text(re.compile(r"closed since \d\d \w{3} \d{4} \d\d:\d\d UTC"))
    expect(why).to_contain_text("[deletion-window]")

    # Archive, and the public page says so.
    page.get_by_label("Why archive").fill("finished; no more releases")
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_role("status")).to_contain_text("Archived")
    screenshot(page, "manage")
    page.goto(f"{site.url}/project/widgets/")
    expect(page.locator(".banner.warn")).to_contain_text("Archived")
    expect(page.locator(".banner.warn")).to_contain_text("finished; no more releases")
    screenshot(page, "project")
    assert_accessible(page)

    page.goto(f"{site.url}/project/widgets/history/")
    expect(page.get_by_role("cell", name="status-changed")).to_be_visible()
    expect(page.get_by_role("cell", name="file-yanked")).to_be_visible()
    proof = page.get_by_role("link", name=re.compile("inclusion proof of log entry")).first
    href = proof.get_attribute("href")
    assert href and http_status(site.url + href) == 200
    screenshot(page, "history")
    assert_accessible(page)


def test_an_admin_quarantines_lifts_deletes_and_restores(site: Site, page: Page, tmp_path: Path) -> None:
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token,
                          make_wheel(tmp_path, "gadgets", "2.0").path, make_sdist(tmp_path, "gadgets", "2.0").path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    sign_in(page, site, "admin", site.admin_password)
    page.goto(f"{site.url}/admin/")
    assert_accessible(page)

    page.get_by_label("Quarantine project").fill("gadgets")
    page.locator("#q-reason").fill("reported as malware, checking")
    page.get_by_role("button", name="Quarantine project").click()
    expect(page.get_by_role("status")).to_contain_text("Quarantined")
    withdrawn = _simple(f"{site.url}/simple/gadgets/")  # PEP 792: the page stays, its files go
    assert withdrawn["project-status"] == {"status": "quarantined", "reason": "reported as malware, checking"}
    assert withdrawn["files"] == []
    page.goto(f"{site.url}/project/gadgets/")
    expect(page.locator(".banner.danger")).to_contain_text("reported as malware, checking")
    page.goto(f"{site.url}/admin/")
    row = page.get_by_role("row").filter(has_text="reported as malware")
    row.get_by_label("Reason (recorded)").fill("false alarm")
    row.get_by_role("button", name="Lift quarantine of gadgets").click()
    expect(page.get_by_role("status")).to_contain_text("Quarantine lifted")
    assert len(_simple(f"{site.url}/simple/gadgets/")["files"]) == 2  # type: ignore[arg-type]

    # An admin deletes a file (with a reason, retyping the name), then restores it from retention.
    page.goto(f"{site.url}/manage/project/gadgets/")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Delete file gadgets-2.0.tar.gz"))
    form.get_by_label("Reason (required of admins)").fill("uploaded by mistake")
    form.get_by_label("Type gadgets to confirm").fill("gadgets")
    form.get_by_role("button", name="Delete file gadgets-2.0.tar.gz").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted")
    assert http_status(f"{site.url}/project/gadgets/2.0/") == 200
    expect(page.get_by_text("gadgets-2.0.tar.gz")).to_have_count(0)
    page.goto(f"{site.url}/admin/")
    row = page.get_by_role("row").filter(has_text="gadgets-2.0.tar.gz")
    expect(row).to_contain_text("uploaded by mistake")
    assert_accessible(page)
    row.get_by_label("Reason (recorded)").fill("the owner asked for it back")
    row.get_by_role("button", name="Restore gadgets-2.0.tar.gz").click()
    expect(page.get_by_role("status")).to_contain_text("Restored")
    page.goto(f"{site.url}/project/gadgets/2.0/")
    expect(page.get_by_role("link", name="gadgets-2.0.tar.gz")).to_be_visible()
    page.goto(f"{site.url}/project/gadgets/history/")
    for action in ("file-deleted", "file-restored", "status-changed"):
        expect(page.get_by_role("cell", name=action).first).to_be_visible()


def test_an_admin_action_without_a_reason_is_refused_by_the_server(site: Site, page: Page) -> None:
    sign_in(page, site, "admin", site.admin_password)
    page.goto(f"{site.url}/admin/")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    reply = page.request.post(f"{site.url}/admin/prohibit/", form={"csrf_token": token, "name": "requests2"})
    assert reply.status == 400
    assert "every admin action is recorded with its reason" in reply.text()


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(site: Site, page: Page,
                                                                          tmp_path: Path) -> None:
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token, make_wheel(tmp_path, "sprockets", "1.0").path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    sign_in(page, site, "admin", site.admin_password)
    # The session cookie goes along (same origin), but no token: a forged form looks like this.
    reply = page.request.post(f"{site.url}/manage/project/sprockets/archive/", form={"reason": "forged"})
    assert reply.status == 403
    assert "CSRF token is missing or wrong" in reply.text()
    wrong = page.request.post(f"{site.url}/manage/project/sprockets/archive/",
                              form={"reason": "forged", "csrf_token": "0" * 64})
    assert wrong.status == 403
    page.goto(f"{site.url}/project/sprockets/")
    expect(page.locator(".banner")).to_have_count(0)
    # A sign-in form posted without the per-browser token is refused too (login CSRF).
    fresh = page.context.browser.new_context() if page.context.browser else None
    assert fresh is not None
    try:
        reply = fresh.request.post(f"{site.url}/account/login/",
                                   form={"username": "admin", "password": site.admin_password})
        assert reply.status == 403
    finally:
        fresh.close()


def test_everything_works_without_javascript(site: Site, javascript_disabled_page: Page, tmp_path: Path) -> None:
    page = javascript_disabled_page
    site.add_user("nojs", "no scripts needed here")
    token = site.server.cli("token", "create", "nojs").stdout.strip()
    upload = twine_upload(f"{site.url}/legacy/", token, make_wheel(tmp_path, "plainforms", "0.1").path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    sign_in(page, site, "nojs", "no scripts needed here")
    page.goto(f"{site.url}/manage/project/plainforms/")
    page.get_by_label("Reason for yanking plainforms-0.1-py3-none-any.whl").fill("typo")
    page.get_by_role("button", name="Yank file plainforms-0.1-py3-none-any.whl").click()
    expect(page.get_by_role("status")).to_contain_text("Yanked")
    page.goto(f"{site.url}/search/?q=plainforms")
    expect(page.get_by_role("link", name="plainforms")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_sign_in_is_rate_limited_and_wrong_passwords_are_refused(site: Site, page: Page) -> None:
    site.add_user("mallory-target", "the real password")
    page.goto(f"{site.url}/account/login/")
    for _ in range(5):
        page.get_by_label("User name").fill("mallory-target")
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("the user name or the password is wrong")
    page.get_by_label("User name").fill("mallory-target")
    page.get_by_label("Password").fill("the real password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("too many failed sign-ins")
    site.move_clock(timedelta(minutes=16))
    sign_in(page, site, "mallory-target", "the real password")


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(field => {
        const label = field.id && document.querySelector(`label[for="${field.id}"]`);
        if (!label) return true;
        const box = label.getBoundingClientRect();
        return box.width === 0 || box.height === 0 || box.right < 0 || box.left > window.innerWidth;
    }).map(field => field.name || field.outerHTML.slice(0, 80))"""


def _assert_labels_visible(page: Page) -> None:
    assert page.evaluate(UNLABELLED) == [], f"form fields without a visible label on {page.url}"


def test_every_page_passes_axe(site: Site, page: Page, tmp_path: Path) -> None:
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token, make_wheel(tmp_path, "axed", "1.0").path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    for path in ("/", "/search/?q=axed", "/search/?q=nothing-matches-this", "/log/", "/account/login/",
                 "/project/axed/", "/project/axed/1.0/", "/project/axed/history/", "/project/no-such-project/"):
        page.goto(site.url + path)
        assert_accessible(page)
        _assert_labels_visible(page)
    sign_in(page, site, "admin", site.admin_password)
    for path in ("/account/", "/admin/", "/manage/project/axed/"):
        page.goto(site.url + path)
        assert_accessible(page)
        _assert_labels_visible(page)


def test_a_maintainer_invited_in_the_browser_sees_owner_actions_disabled_with_the_rule(
        site: Site, page: Page, tmp_path: Path) -> None:
    site.add_user("olga", "owner of cogs pass")
    site.add_user("max", "maintainer of cogs pass")
    token = site.server.cli("token", "create", "olga").stdout.strip()
    upload = twine_upload(f"{site.url}/legacy/", token, make_wheel(tmp_path, "cogs", "3.1").path)
    assert upload.returncode == 0, upload.stdout + upload.stderr

    sign_in(page, site, "olga", "owner of cogs pass")
    page.goto(f"{site.url}/manage/project/cogs/")
    page.get_by_label("Invite user").fill("max")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent")
    expect(page.get_by_text("max (maintainer)")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, site, "max", "maintainer of cogs pass")
    page.get_by_role("listitem").filter(has_text="cogs").get_by_role("button", name="Accept").click()
    page.goto(f"{site.url}/manage/project/cogs/")
    expect(page.get_by_text("You are maintainer.")).to_be_visible()
    for button, sentence in (("Archive", "only an owner of cogs or an admin may change its status"),
                             ("Yank release 3.1", "only an owner of cogs or an admin may yank or unyank"),
                             ("Delete the project", "only an owner of cogs or an admin may delete"),
                             ("Turn deletions off", "only an owner of cogs or an admin may turn deletions off")):
        target = page.get_by_role("button", name=button, exact=True)
        expect(target).to_be_disabled()
        expect(page.locator(f"#{target.get_attribute('aria-describedby')}")).to_contain_text(sentence)
    assert_accessible(page)
    # The server refuses it too, whatever the page showed.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    reply = page.request.post(f"{site.url}/manage/project/cogs/archive/", form={"csrf_token": csrf or ""})
    assert reply.status == 403
    assert "only an owner of cogs or an admin may change its status" in reply.text()
