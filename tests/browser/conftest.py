"""Browser tests: Debian's chromium driven through Playwright's sync API, with axe-core for accessibility.

Nothing here downloads a browser build: Playwright is pointed at the Debian package, and axe-core comes
from the npm registry into a per-user cache, so the only sources are the package registries.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.support.server import Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
# The flags keep a headless chromium in a container quiet and offline: no sandbox (we run as root),
# no GPU, and none of the background fetches (updates, sync, QUIC probes) that would leave loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_DIR = Path.home() / ".cache" / "moorage-tests" / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_SPEC = "axe-core@4"  # a major, not an exact version: fixes arrive without editing this file

_chromium_ready = False
_axe_source: str | None = None


def _unavailable(reason: str) -> NoReturn:
    # CI must not go green by skipping every browser test; a developer's machine may lack the means.
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def _file_lock(name: str) -> Iterator[None]:
    """Serialise a one-off setup step across processes (pytest-xdist workers run their sessions side by side)."""
    path = Path(tempfile.gettempdir()) / f"moorage-tests-{name}.lock"
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _apt_install(package: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "install", "-y", package], capture_output=True, text=True, env=env,
                          timeout=900)


def ensure_chromium() -> None:
    """Install Debian's chromium if it is missing; skip (or fail under CI) when that cannot be done."""
    global _chromium_ready
    if _chromium_ready:
        return
    with _file_lock("chromium"):
        # Checked again under the lock: another worker may have installed it while we waited.
        if not CHROMIUM.exists():
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                _unavailable(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)")
            proc = _apt_install("chromium")
            if proc.returncode != 0:
                # Only refresh the package lists when the install failed: it is slow and usually unneeded.
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=900)
                proc = _apt_install("chromium")
            if proc.returncode != 0 or not CHROMIUM.exists():
                _unavailable(f"apt-get install chromium failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                             f"\n{proc.stderr[-2000:]}")
    _chromium_ready = True


def axe_source() -> str:
    """The text of axe-core's axe.min.js, installed from the npm registry into a cache on first use."""
    global _axe_source
    if _axe_source is not None:
        return _axe_source
    if not AXE_JS.exists():
        with _file_lock("axe"):
            if not AXE_JS.exists():
                npm = shutil.which("npm")
                if npm is None:
                    _unavailable("npm is not installed, so axe-core cannot be fetched (apt-get install npm)")
                AXE_DIR.mkdir(parents=True, exist_ok=True)
                proc = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                                       str(AXE_DIR), AXE_SPEC], capture_output=True, text=True, timeout=600)
                if proc.returncode != 0 or not AXE_JS.exists():
                    _unavailable(f"npm install {AXE_SPEC} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                                 f"\n{proc.stderr[-2000:]}")
    _axe_source = AXE_JS.read_text(encoding="utf-8")
    return _axe_source


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    ensure_chromium()
    with sync_playwright() as pw:
        # executable_path: Playwright's own browser downloads are not reachable; Debian's build is.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def _context(browser: Browser, **options: Any) -> Iterator[BrowserContext]:
    context = browser.new_context(**options)
    # Loopback pages answer in milliseconds; fail a stuck wait well before pytest's own patience runs out.
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own, so cookies and storage never carry from one test to the next."""
    with _context(browser) as context:
        yield context.new_page()


@pytest.fixture
def javascript_disabled_page(browser: Browser) -> Iterator[Page]:
    """A page with scripting off, for checking that pages still work without JavaScript (axe needs scripts)."""
    with _context(browser, java_script_enabled=False) as context:
        yield context.new_page()


def axe_violations(page: Page, impacts: Sequence[str] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run axe-core on the page as it stands and return the violations whose impact is in `impacts`."""
    has_axe = "() => typeof window.axe === 'object'"
    if not page.evaluate(has_axe):
        try:
            page.add_script_tag(content=axe_source())
        except PlaywrightError as exc:
            if "Content Security Policy" not in str(exc):
                raise
            # A CSP without 'unsafe-inline' refuses the tag. Evaluation through the DevTools protocol is
            # not subject to CSP, so the page keeps its real policy while axe still runs.
            page.evaluate(axe_source() + "\n;undefined")
        if not page.evaluate(has_axe):
            # The tag was accepted but never ran: scripting is off. axe.run would then wait forever on
            # timers that never fire (and page.evaluate has no timeout), so say so instead of hanging.
            raise RuntimeError("axe cannot run on a page with JavaScript disabled; check the same URL with `page`")
    results: dict[str, Any] = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v.get("impact") in impacts]


def format_violations(violations: Sequence[dict[str, Any]], max_nodes: int = 3) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v.get('help')} [{v.get('helpUrl', '')}]")
        nodes = v.get("nodes", [])
        for node in nodes[:max_nodes]:
            lines.append(f"    at {' '.join(map(str, node.get('target', [])))}")
        if len(nodes) > max_nodes:
            lines.append(f"    … and {len(nodes) - max_nodes} more")
    return "\n".join(lines)


def assert_accessible(page: Page, impacts: Sequence[str] = ("serious", "critical")) -> None:
    violations = axe_violations(page, impacts)
    if violations:
        pytest.fail(f"axe found {len(violations)} {'/'.join(impacts)} violation(s) on {page.url}:\n"
                    + format_violations(violations), pytrace=False)


# -- the site under test: a real server whose clock the tests can move -------------------------

PASSWORD_LINE = re.compile(r"^\s+password:\s+(\S+)$", re.MULTILINE)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"


@dataclass
class Site:
    server: Server
    admin_password: str
    offset_file: Path
    offset: float = 0.0

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")

    def move_clock(self, delta: timedelta) -> None:
        """The server's clock jumps ahead (it reads the offset file on every `now()`)."""
        self.offset += delta.total_seconds()
        tmp = self.offset_file.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        tmp.replace(self.offset_file)

    def add_user(self, name: str, password: str, *, admin: bool = False) -> None:
        self.server.cli("user", "add", name, "--password-stdin", *(["--admin"] if admin else []),
                        input=password + "\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    offset_file = root / "clock-offset"
    server = start_server(root / "data", extra_env={"MOORAGE_CLOCK_OFFSET_FILE": str(offset_file)})
    match = PASSWORD_LINE.search(server.output.read_text())
    assert match, "the first start prints the admin password"
    try:
        yield Site(server, match.group(1), offset_file)
    finally:
        server.stop()


def sign_in(page: Page, site: Site, user: str, password: str) -> None:
    page.goto(f"{site.url}/account/login/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/account/")


def screenshot(page: Page, name: str) -> None:
    """Kept with the test run; written into docs/images when MOORAGE_UPDATE_SCREENSHOTS=1."""
    page.screenshot(path=str(Path(tempfile.gettempdir()) / f"moorage-{name}.png"), full_page=True)
    if os.environ.get("MOORAGE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
