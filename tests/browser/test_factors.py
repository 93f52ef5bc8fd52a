"""Second factors in Debian's chromium: a security key (Chromium's virtual authenticator), an
authenticator app (codes from pyotp), recovery codes, and the fresh check sensitive actions ask for.

WebAuthn refuses IP addresses as relying-party ids, so these pages are visited as
http://localhost:PORT (a secure context, like 127.0.0.1); this module's browser maps that
name to 127.0.0.1, so nothing leaves loopback. The server's clock is moved, never slept through.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Site, assert_accessible
from tests.support.clients import twine_upload
from tests.support.dists import make_wheel

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def local_browser(browser: Browser) -> Iterator[Browser]:
    """Chromium that resolves localhost to 127.0.0.1 only (never ::1, never a DNS server); launched
    through the session's Playwright, since one process can run only one."""
    local = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True,
                                        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"])
    try:
        yield local
    finally:
        local.close()


def _page(browser: Browser, **options: object) -> Iterator[Page]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(local_browser: Browser) -> Iterator[Page]:
    yield from _page(local_browser)


@pytest.fixture
def no_js_page(local_browser: Browser) -> Iterator[Page]:
    yield from _page(local_browser, java_script_enabled=False)


def _base(site: Site) -> str:
    return site.url.replace("127.0.0.1", "localhost")


def _password_step(page: Page, site: Site, user: str) -> None:
    page.goto(f"{_base(site)}/account/login/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def _now(site: Site) -> float:
    """The server's time: the system clock plus the offset the tests moved it by."""
    return time.time() + site.offset


def _code(secret: str, site: Site) -> str:
    return str(pyotp.TOTP(secret).at(_now(site)))


def _enrol_totp(page: Page, site: Site, *, check_pages: bool = False) -> tuple[str, list[str]]:
    """Through the pages: the secret read off the enrolment page, confirmed by a code."""
    page.goto(f"{_base(site)}/account/")
    page.get_by_role("link", name="Add an authenticator app (TOTP)").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    uri = page.locator("#totp-uri").inner_text().strip()
    assert pyotp.parse_uri(uri).secret == secret
    assert uri.startswith("otpauth://totp/moorage:") and "issuer=moorage" in uri
    expect(page.get_by_alt_text("QR code of the otpauth address above")).to_be_visible()
    if check_pages:
        assert_accessible(page)
    page.get_by_label("Name of this factor").fill("phone")
    page.get_by_label("Code from the app").fill(_code(secret, site))
    page.get_by_role("button", name="Add authenticator app").click()
    expect(page.locator("h1")).to_have_text("Recovery codes")
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 8 and all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes)
    if check_pages:
        assert_accessible(page)
    return secret, codes


def _virtual_authenticator(page: Page) -> CDPSession:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": False, "hasUserVerification": True,
        "isUserVerified": True}})
    return cdp


def test_a_security_key_is_enrolled_and_signs_in_after_the_password(site: Site, page: Page) -> None:
    site.add_user("keyholder", PASSWORD)
    _password_step(page, site, "keyholder")
    page.wait_for_url(f"{_base(site)}/account/")  # no factor yet: one step, as before
    expect(page.get_by_text("No second factor yet")).to_be_visible()
    _virtual_authenticator(page)

    expect(page.get_by_role("link", name="Add a security key")).to_have_attribute("href", "/account/factors/webauthn/")
    response = page.goto(f"{_base(site)}/account/factors/webauthn/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp  # this page's script, from /static/ only
    expect(page.locator("h1")).to_have_text("Add a security key")
    assert_accessible(page)
    page.get_by_label("Name of this key").fill("virtual key")
    page.get_by_role("button", name="Register security key").click()
    expect(page.locator("h1")).to_have_text("Recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(8)
    page.get_by_role("link", name="Back to your account").click()
    expect(page.get_by_role("row").filter(has_text="virtual key")).to_contain_text("security key")
    expect(page.locator("#recovery-left")).to_have_text("Recovery codes: 8 of 8 left.")
    assert page.locator("script").count() == 0  # the account page itself runs nothing

    _sign_out(page)
    _password_step(page, site, "keyholder")
    page.wait_for_url(re.compile(r"/account/login/factor/"))
    expect(page.get_by_text("The password of keyholder was right")).to_be_visible()
    expect(page.get_by_label("Code from your authenticator app")).to_have_count(0)  # no app enrolled
    expect(page.get_by_label("Recovery code (each works once)")).to_be_visible()
    assert_accessible(page)
    # Not signed in yet: the account page sends the browser to sign in.
    page.goto(f"{_base(site)}/account/")
    page.wait_for_url(re.compile(r"/account/login/"))
    page.goto(f"{_base(site)}/account/login/factor/")
    page.get_by_role("button", name="Use security key").click()
    page.wait_for_url(f"{_base(site)}/account/")
    expect(page.locator("main h1")).to_have_text("keyholder")
    expect(page.get_by_role("row").filter(has_text="virtual key")).not_to_contain_text("never")


def test_an_authenticator_app_is_enrolled_and_signs_in_without_javascript(site: Site, no_js_page: Page) -> None:
    page = no_js_page
    site.add_user("appuser", PASSWORD)
    _password_step(page, site, "appuser")
    page.wait_for_url(f"{_base(site)}/account/")
    # A wrong confirmation code keeps the same secret on the page and adds nothing.
    page.get_by_role("link", name="Add an authenticator app (TOTP)").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill("12345")
    page.get_by_role("button", name="Add authenticator app").click()
    expect(page.get_by_role("alert")).to_contain_text("6 digits")
    assert page.locator("#totp-secret").inner_text().replace(" ", "") == secret
    page.goto(f"{_base(site)}/account/")
    expect(page.get_by_text("No second factor yet")).to_be_visible()

    secret, _codes = _enrol_totp(page, site)
    page.goto(f"{_base(site)}/account/")
    expect(page.get_by_role("row").filter(has_text="phone")).to_contain_text("authenticator app")
    _sign_out(page)

    site.move_clock(timedelta(minutes=1))  # past the step the enrolment code used
    _password_step(page, site, "appuser")
    page.wait_for_url(re.compile(r"/account/login/factor/"))
    expect(page.get_by_role("button", name="Use security key")).to_have_count(0)  # no key enrolled
    page.get_by_label("Code from your authenticator app").fill("000000" if _code(secret, site) != "000000"
                                                                 else "111111")
    page.get_by_role("button", name="Verify code").click()
    expect(page.get_by_role("alert")).to_contain_text("the code is wrong")
    code = _code(secret, site)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Verify code").click()
    page.wait_for_url(f"{_base(site)}/account/")
    expect(page.locator("main h1")).to_have_text("appuser")

    # The same code again (a replay) is refused.
    _sign_out(page)
    _password_step(page, site, "appuser")
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Verify code").click()
    expect(page.get_by_role("alert")).to_contain_text("already used")


def test_a_recovery_code_signs_in_once_and_the_account_page_counts_what_is_left(site: Site, page: Page) -> None:
    site.add_user("forgetful", PASSWORD)
    _password_step(page, site, "forgetful")
    page.wait_for_url(f"{_base(site)}/account/")
    _secret, codes = _enrol_totp(page, site, check_pages=True)
    page.goto(f"{_base(site)}/account/")
    assert_accessible(page)  # with its table of factors
    _sign_out(page)

    _password_step(page, site, "forgetful")
    page.get_by_label("Recovery code (each works once)").fill(codes[0].upper())
    page.get_by_role("button", name="Use recovery code").click()
    page.wait_for_url(f"{_base(site)}/account/")
    expect(page.locator("#recovery-left")).to_have_text("Recovery codes: 7 of 8 left.")
    _sign_out(page)

    _password_step(page, site, "forgetful")
    page.get_by_label("Recovery code (each works once)").fill(codes[0])
    page.get_by_role("button", name="Use recovery code").click()
    expect(page.get_by_role("alert")).to_have_text("the recovery code is wrong or was already used")
    assert "/account/login/factor/" in page.url
    page.get_by_label("Recovery code (each works once)").fill(codes[1])
    page.get_by_role("button", name="Use recovery code").click()
    page.wait_for_url(f"{_base(site)}/account/")
    expect(page.locator("#recovery-left")).to_have_text("Recovery codes: 6 of 8 left.")


def test_sensitive_actions_ask_for_a_fresh_factor_after_fifteen_minutes(site: Site, page: Page,
                                                                        tmp_path: Path) -> None:
    site.add_user("careful", PASSWORD)
    site.add_user("nofactor", PASSWORD)
    _password_step(page, site, "careful")
    page.wait_for_url(f"{_base(site)}/account/")
    secret, codes = _enrol_totp(page, site)
    page.goto(f"{_base(site)}/account/")

    # Within the window (the enrolment was a check): a token is made at once.
    page.get_by_label("Description").fill("ci")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_contain_text("moorage-")

    site.move_clock(timedelta(minutes=16))
    page.goto(f"{_base(site)}/account/")
    page.get_by_label("Description").fill("laptop")
    page.get_by_label("Expires after (days; empty: never)").fill("30")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("h1")).to_have_text("Confirm with your second factor")
    expect(page.locator("#factor-check-reason")).to_contain_text(
        "Creating an API token needs a second-factor check within the last 15 minutes")
    expect(page.locator("#new-token")).to_have_count(0)
    assert_accessible(page)
    page.get_by_label("Code from your authenticator app").fill(_code(secret, site))
    page.get_by_role("button", name="Verify code").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("moorage-")
    # The form's fields came through the check.
    row = page.get_by_role("row").filter(has_text=token.split("-")[1])
    expect(row).to_contain_text("laptop")
    expect(row).not_to_contain_text("never")

    # A file of theirs: deleting it asks too, once the check is stale again.
    wheel = make_wheel(tmp_path, "careful-widgets", "1.0")
    upload = twine_upload(f"{site.url}/legacy/", site.server.admin_token, wheel.path)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    site.server.cli("role", "set", "careful-widgets", "careful", "--role", "owner")
    site.move_clock(timedelta(minutes=16))
    page.goto(f"{_base(site)}/manage/project/careful-widgets/")
    form = page.locator("form").filter(has=page.get_by_role("button", name=f"Delete file {wheel.filename}"))
    form.get_by_label("Reason").fill("broken build")
    form.get_by_label("Type careful-widgets to confirm").fill("careful-widgets")
    form.get_by_role("button", name=f"Delete file {wheel.filename}").click()
    expect(page.locator("#factor-check-reason")).to_contain_text(f"Deleting {wheel.filename} needs a second-factor")
    page.get_by_label("Recovery code (each works once)").fill("aaaa-bbbb-cccc-dddd")
    page.get_by_role("button", name="Use recovery code").click()
    expect(page.get_by_role("alert")).to_contain_text("the recovery code is wrong")
    expect(page.locator("h1")).to_have_text("Confirm with your second factor")
    page.get_by_label("Recovery code (each works once)").fill(codes[0])
    page.get_by_role("button", name="Use recovery code").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted")
    page.goto(f"{_base(site)}/project/careful-widgets/history/")
    expect(page.get_by_role("cell", name="file-deleted").first).to_be_visible()

    # Removing the last factor: asked again after the window, a recovery code passes it.
    site.move_clock(timedelta(minutes=16))
    page.goto(f"{_base(site)}/account/")
    page.get_by_role("button", name=re.compile(r"^Remove phone")).click()
    expect(page.locator("#factor-check-reason")).to_contain_text("Removing the second factor")
    page.get_by_label("Recovery code (each works once)").fill(codes[1])
    page.get_by_role("button", name="Use recovery code").click()
    page.wait_for_url(f"{_base(site)}/account/?done=last-factor-removed")
    expect(page.get_by_role("status")).to_contain_text("It was the last one")
    expect(page.get_by_text("No second factor yet")).to_be_visible()
    _sign_out(page)
    _password_step(page, site, "careful")
    page.wait_for_url(f"{_base(site)}/account/")  # one step again

    # An account without a factor is never asked.
    _sign_out(page)
    _password_step(page, site, "nofactor")
    page.wait_for_url(f"{_base(site)}/account/")
    site.move_clock(timedelta(minutes=16))
    page.get_by_label("Description").fill("desk")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_contain_text("moorage-")


def test_a_factor_post_without_the_csrf_token_is_refused(site: Site, page: Page) -> None:
    site.add_user("csrfcheck", PASSWORD)
    _password_step(page, site, "csrfcheck")
    page.wait_for_url(f"{_base(site)}/account/")
    for path in ("/account/factors/totp/", "/account/recovery-codes/", "/account/login/factor/"):
        response = page.request.post(f"{_base(site)}{path}", form={"code": "123456", "factor_method": "totp"})
        assert response.status == 403 and "csrf-check-failed" in response.text(), path
