from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import assert_accessible
from tests.support.server import Server

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_home_page_renders_and_is_accessible(server: Server, page: Page) -> None:
    response = page.goto(server.url)
    assert response is not None and response.ok, response and response.status
    assert "moorage" in page.locator("h1").inner_text().lower()
    assert_accessible(page)
