"""The web app in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The server runs in a thread of the test process on a free port, over the
session's AT&T index. Screenshots of each step go to the test's temporary
folder (``screenshots/``), printed at the end; they are not committed.
Skipped when Playwright or Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

# The test extra installs these and .ci/run installs Debian's chromium: missing, the tests fail (never skip).
import playwright.sync_api as playwright_api  # noqa: E402
import uvicorn  # noqa: E402

CHROMIUM = os.environ.get("EMBEDKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(app):
    """Serve ``app`` with uvicorn at http://127.0.0.1:PORT in a thread (yields the base address)."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not running.started:
        if time.time() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture
def server(make_app):
    yield from serve(make_app()[0])


@pytest.fixture
def people_server(make_app, people_index_dir):
    yield from serve(make_app(people_index_dir)[0])


@pytest.fixture
def page(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does)")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            tab.screenshots = tmp_path / "screenshots"
            tab.screenshots.mkdir()
            yield tab
            assert not errors, f"browser console errors: {errors}"
        finally:
            browser.close()
            print(f"\nscreenshots in {tmp_path / 'screenshots'}")


def shot(page, name: str) -> None:
    page.screenshot(path=str(page.screenshots / f"{name}.png"), full_page=True)


def test_people_grid_name_a_person(people_server, page):
    page.goto(people_server + "/")
    cards = page.locator("#people li.person")
    assert cards.count() >= 8
    assert page.eval_on_selector_all("#people img.thumb", "imgs => imgs.every(i => i.naturalWidth > 0)")
    shot(page, "people-grid")
    cards.first.locator("a").click()
    page.wait_for_selector("#rename")
    faces = page.locator("ol.faces li").count()
    assert faces >= 5
    page.fill("#rename input[name=name]", "Grace Hopper")
    page.click("#rename button")
    page.wait_for_selector("#person-name:has-text('Grace Hopper')")
    shot(page, "person-named")
    page.click("nav >> text=People")
    assert page.locator("#people li.person").first.locator(".who").inner_text() == "Grace Hopper"
    shot(page, "people-grid-named")


def test_search_by_uploaded_photo_shows_the_right_person_first(server, page, att_dir):
    page.goto(server + "/search")
    page.set_input_files("input[name=photo]", str(att_dir / "s4" / "10.pgm"))
    page.click("button[type=submit]")
    page.wait_for_selector("#result")
    first = page.locator("ol.matches li.match").first
    assert first.locator(".who").inner_text() == "s4"
    assert first.locator(".verdict").inner_text().startswith("same person")
    assert "same" in first.get_attribute("class")
    # Every match thumbnail really loaded (served by face id).
    widths = page.eval_on_selector_all("ol.matches img.thumb", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 5 and all(w > 0 for w in widths)
    assert page.locator("figure.boxed rect.box").count() == 1
    shot(page, "search")
    # Its photo page: the stored photo with its face boxed.
    first.locator("a").click()
    page.wait_for_selector("figure.boxed img")
    assert page.eval_on_selector("figure.boxed img", "img => img.naturalWidth") > 0
    assert page.locator("ol.faces .who").first.inner_text() == "1. s4"
    shot(page, "photo")


def test_compare_two_photos_shows_the_verdict(server, page, att_dir):
    page.goto(server + "/compare")
    page.set_input_files("input[name=photo_a]", str(att_dir / "s2" / "1.pgm"))
    page.set_input_files("input[name=photo_b]", str(att_dir / "s2" / "7.pgm"))
    page.click("button[type=submit]")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "Same person"
    assert "pairs of strangers" in page.inner_text("#strangers")
    shot(page, "compare-same")
    page.set_input_files("input[name=photo_a]", str(att_dir / "s2" / "1.pgm"))
    page.set_input_files("input[name=photo_b]", str(att_dir / "s9" / "1.pgm"))
    page.click("button[type=submit]")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "Different people"
    shot(page, "compare-different")


def test_static_people_page_opens_from_a_file(people_index_dir, page, tmp_path):
    from embedkit.index import FaceIndex
    from embedkit.server.pages import people_page

    with FaceIndex.open(people_index_dir) as index:
        html = people_page(index)
    out = tmp_path / "people.html"
    out.write_text(html)
    page.goto(out.as_uri())
    assert page.locator("section.person-row").count() >= 8
    assert page.eval_on_selector_all("img.thumb", "imgs => imgs.length > 0 && imgs.every(i => i.naturalWidth > 0)")
    shot(page, "static-people")
