"""End to end in a real headless Chromium: `digitnet serve` with a model trained here on
real MNIST; digits drawn on the page's canvas with the mouse (and a finger) are read."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import mnist_dir, requires_mnist

CHROMIUM = os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_COPY = Path("/tmp/digitnet-web-screenshot.png")  # for people to look at after a run

pytestmark = [
    requires_mnist,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("fastapi", reason="FastAPI is not installed (the web extra)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.web.helpers import mnist_classifier, serving

    model = tmp_path_factory.mktemp("served") / "model.npz"
    mnist_classifier(mnist_dir()).save(model)
    with serving(model) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, url, **context_options):
    context = browser.new_context(**context_options)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    return page, problems


def pad_box(page) -> dict:
    box = page.locator("#pad").bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100
    return box


def stroke(page, points, *, hold=None):
    """Press the mouse at the first point, move through the rest, release (unless ``hold``
    is the index at which to stop and return with the button still down)."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for i, pt in enumerate(points[1:], start=1):
        page.mouse.move(*pt, steps=2)
        if hold is not None and i == hold:
            return
    page.mouse.up()


def vertical_line(box, n=24):
    x = box["x"] + box["width"] * 0.5
    return [(x, box["y"] + box["height"] * (0.15 + 0.7 * i / n)) for i in range(n + 1)]


def ellipse(box, n=48):
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rx, ry = box["width"] * 0.22, box["height"] * 0.33
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
            for i in range(n + 2)]


def shows(page, digit: str, timeout: float = 15_000):
    page.wait_for_function("d => document.querySelector('#digit').textContent === d", arg=digit,
                           timeout=timeout)


def seen_ink(page) -> int:
    """Sum of the 28x28 'what the network sees' canvas (0 when it is empty)."""
    return page.evaluate("""() => {
        const d = document.querySelector('#seen').getContext('2d').getImageData(0, 0, 28, 28).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }""")


def test_drawn_one_and_zero_are_read(server, browser, tmp_path):
    page, problems = open_page(browser, server, viewport={"width": 1100, "height": 900})
    assert page.locator("#digit").text_content() == "?"
    assert "784" in page.locator("#model-info").text_content()
    assert page.locator("#bars li").count() == 10
    box = pad_box(page)

    # a "1": live prediction while the button is still down, then the final answer
    line = vertical_line(box)
    stroke(page, line, hold=len(line) * 2 // 3)
    page.wait_for_function("document.querySelector('#digit').textContent !== '?'", timeout=15_000)
    for pt in line[len(line) * 2 // 3 + 1:]:
        page.mouse.move(*pt, steps=2)
    page.mouse.up()
    shows(page, "1")
    assert page.locator("#bars li.top").get_attribute("data-cls") == "1"
    assert "% sure" in page.locator("#confidence").text_content()
    assert seen_ink(page) > 0
    assert page.locator("#layers canvas").count() == 1
    assert "128 units" in page.locator("#layers p").text_content()
    page.screenshot(path=str(tmp_path / "one.png"), full_page=True)

    page.click("#clear")
    assert page.locator("#digit").text_content() == "?"
    assert seen_ink(page) == 0

    # a "0": an ellipse
    stroke(page, ellipse(box))
    shows(page, "0")
    assert page.locator("#bars li.top").get_attribute("data-cls") == "0"
    page.wait_for_function("""() => {  // the winning bar is drawn, and long (after its transition)
        const li = document.querySelector('#bars li.top');
        return li.querySelector('.fill').getBoundingClientRect().width
               > 0.5 * li.querySelector('.track').getBoundingClientRect().width; }""", timeout=5_000)
    shot = tmp_path / "zero.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    with contextlib.suppress(OSError):
        shutil.copyfile(shot, SCREENSHOT_COPY)
    assert problems == []
    page.context.close()


def test_phone_sized_screen_with_a_finger(server, browser, tmp_path):
    """390x844 with touch: nothing wider than the screen; a finger (touch events through the
    DevTools protocol, which the page receives as pointer events) draws a 1."""
    page, problems = open_page(browser, server, viewport={"width": 390, "height": 844},
                               device_scale_factor=2, is_mobile=True, has_touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = pad_box(page)
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    for sel in ("#clear", "#digit", "#bars", "#seen"):
        b = page.locator(sel).bounding_box()
        assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 390, sel
    cdp = page.context.new_cdp_session(page)
    points = vertical_line(box)
    cdp.send("Input.dispatchTouchEvent",
             {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    shows(page, "1")
    assert page.evaluate("window.scrollY") == 0  # the finger drew; it did not scroll the page
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    with contextlib.suppress(OSError):
        shutil.copyfile(tmp_path / "phone.png", SCREENSHOT_COPY.with_name("digitnet-web-phone.png"))
    assert problems == []
    page.context.close()


@pytest.fixture(scope="module")
def cnn_server(tmp_path_factory):
    from tests.web.helpers import mnist_cnn_classifier, serving

    model = tmp_path_factory.mktemp("served-cnn") / "model.npz"
    mnist_cnn_classifier(mnist_dir()).save(model)
    with serving(model) as url:
        yield url


def test_a_cnn_shows_its_feature_maps(cnn_server, browser, tmp_path):
    """A convolutional network: the page shows, for the drawn digit, one grid of maps per
    convolution, lit where the strokes are; Clear blanks them."""
    page, problems = open_page(browser, cnn_server, viewport={"width": 1100, "height": 900})
    assert "convolutions 8-16" in page.locator("#model-info").text_content()
    assert page.locator("#maps-panel").is_visible()
    stroke(page, vertical_line(pad_box(page)))
    shows(page, "1")
    page.wait_for_function("document.querySelectorAll('#maps canvas').length === 2", timeout=15_000)
    captions = page.locator("#maps p").all_text_contents()
    assert captions[0].startswith("convolution 1: 8 maps of 28x28") and "16 maps of 14x14" in captions[1]
    lit = page.evaluate("""() => [...document.querySelectorAll('#maps canvas')].map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; })""")
    assert all(v > 0 for v in lit)
    assert "32 units" in page.locator("#layers p").text_content()  # the dense hidden layer
    shot = tmp_path / "cnn.png"
    page.screenshot(path=str(shot), full_page=True)
    with contextlib.suppress(OSError):
        shutil.copyfile(shot, SCREENSHOT_COPY.with_name("digitnet-web-cnn.png"))
    page.click("#clear")
    assert page.evaluate("""() => [...document.querySelectorAll('#maps canvas')].every((c) =>
        c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every((v) => v === 0))""")
    assert problems == []
    page.context.close()
