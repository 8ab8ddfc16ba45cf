"""The web page in a real browser: Debian's chromium driven by Playwright, offline, against the real server.

Skipped (with the reason) when /usr/bin/chromium or the playwright package is missing; `make test`
installs chromium with apt when it can.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make test does when apt is usable)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A page that may talk only to our server: any other host is blocked and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.outside = []
    page.errors = []
    ours = urlparse(server.url).netloc

    def route(r):
        url = urlparse(r.request.url)
        if url.scheme in ("data", "blob") or url.netloc == ours:
            r.continue_()
        else:
            page.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def heatmap_ink(page) -> int:
    """Non-transparent pixels on the heatmap canvas (0 when nothing is drawn)."""
    return page.evaluate(
        """() => { const c = document.getElementById('heatmap');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )


def test_pick_a_history_and_see_recommendations_and_heatmap(page, server, model):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('SASRec')")
    # search by title and pick the first hit
    page.fill("#search", "genre C")
    page.wait_for_selector("#search-results li button")
    first = page.inner_text("#search-results li button >> nth=0")
    assert "(genre C)" in first
    page.click("#search-results li button >> nth=0")
    # type more ids, one of them unknown
    page.fill("#item-ids", "i3, i17, not-an-item")
    page.press("#item-ids", "Enter")
    page.wait_for_function("document.querySelectorAll('#history li').length === 4")
    history = page.eval_on_selector_all("#history li", "els => els.map(e => e.dataset.itemId)")
    assert history[1:] == ["i3", "i17", "not-an-item"]
    page.fill("#k", "6")
    page.click("#recommend")
    page.wait_for_selector("#recommendations li")

    shown = page.eval_on_selector_all("#recommendations li", "els => els.map(e => e.dataset.itemId)")
    expected = model.recommend(histories={"x": history[:3]}, k=6)["item_id"].tolist()
    assert shown == expected
    assert model.item_titles_[expected[0]] in page.inner_text("#recommendations li >> nth=0")
    assert "not-an-item" in page.inner_text("#notes")
    assert page.is_hidden("#error")

    # one heatmap row per layer and head (+ one for attributions when explained), drawn with ink
    rows = page.evaluate("document.getElementById('heatmap').rows.length")
    explained = page.evaluate("document.getElementById('method').value") != ""
    assert rows == model.layers * model.heads + (1 if explained else 0)
    assert heatmap_ink(page) > 100
    if explained:
        assert page.inner_text("#narrative").strip()

    page.hover("#heatmap", position={"x": page.evaluate("document.getElementById('heatmap').width") - 5, "y": 10})
    assert "position 3 of 3" in page.inner_text("#heat-info")
    assert page.outside == [] and page.errors == []


def test_a_known_user_and_a_bad_request_show_the_api_error(page, server, model):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('SASRec')")
    page.fill("#user", "nobody-at-all")
    page.click("#recommend")
    page.wait_for_selector("#error:not([hidden])")
    assert "was not seen in training" in page.inner_text("#error")

    user = str(model.user_ids_[0])
    page.fill("#user", user)
    page.click("#recommend")
    page.wait_for_selector("#recommendations li")
    page.wait_for_selector("#error", state="hidden")
    shown = page.eval_on_selector_all("#recommendations li", "els => els.map(e => e.dataset.itemId)")
    assert shown == model.recommend(users=[user], k=10)["item_id"].tolist()
    assert heatmap_ink(page) > 100
    assert page.outside == [] and page.errors == []
