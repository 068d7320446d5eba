"""The page's "make a playlist" action in Debian's Chromium (Playwright): ordered list, transitions,
the path on the map."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # drives Chromium: not in make test-fast
if not CHROMIUM.exists():
    pytest.skip(
        "/usr/bin/chromium not installed (make test installs it with apt-get)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from recsys.engine import Engine
    from recsys.serve import ServeOptions, create_app
    from recsys.serve.testing import serve_in_thread
    from recsys.testing.engine import fast_config, make_catalog, planted_histories

    cat = make_catalog(200)
    out = tmp_path_factory.mktemp("plbrowser") / "index"
    Engine.build(
        cat, histories=planted_histories(cat), out=out, config=fast_config(genre_probs=False), seed=0
    )
    with serve_in_thread(create_app(ServeOptions(index=str(out)))) as url:
        yield url


def test_make_a_playlist(server, tmp_path):
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(server + "/")
            page.wait_for_function("document.querySelector('[data-testid=map]').dataset.points === '200'")
            page.get_by_test_id("make-playlist").click()  # empty queue: a message, no request
            assert "recent queue" in page.get_by_test_id("status").inner_text()
            for q in ("song 10", "song 11"):
                page.get_by_test_id("search").fill(q)
                page.locator(f"[data-testid=search-result][data-id=t{int(q.split()[1]):04d}]").click()
            assert page.get_by_test_id("recent-item").count() == 2
            page.get_by_test_id("playlist-length").select_option("20")
            page.get_by_test_id("playlist-arc").select_option("rise")
            page.get_by_test_id("make-playlist").click()
            page.wait_for_function("document.querySelectorAll('[data-testid=playlist-item]').length === 20")
            items = page.get_by_test_id("playlist-item")
            ids = [items.nth(i).get_attribute("data-id") for i in range(20)]
            assert len(set(ids)) == 20 and not {"t0010", "t0011"} & set(ids)
            notes = [items.nth(i).get_by_test_id("transition").inner_text() for i in range(20)]
            assert all("BPM" in n for n in notes) and all(" -> " in n for n in notes)
            assert page.evaluate("state.playlist.length") == 20
            # reasons: plain sentences naming tracks by title first, the technical ones one click away
            first = items.nth(0).get_by_test_id("playlist-reason").first.inner_text()
            assert first and "conf" not in first and "cos " not in first
            details = items.nth(0).get_by_test_id("playlist-details")
            assert not details.get_attribute("open")
            details.locator("summary").click()
            assert details.get_attribute("open") is not None and "pick #" in details.inner_text()
            assert page.evaluate("state.playlist.every(t => Number.isFinite(t.map.x))")
            # the path is drawn: purple pixels where the first playlist track sits on the map
            x, y = page.evaluate("toScreen(state.playlist[0].map)")
            box = page.get_by_test_id("map").bounding_box()
            shot = tmp_path / "playlist_page.png"
            page.screenshot(path=str(shot), full_page=True)
            clip = page.screenshot(
                clip={"x": box["x"] + x - 3, "y": box["y"] + y - 3, "width": 6, "height": 6}
            )
            if os.environ.get("RECSYS_SCREENSHOT_DIR"):
                page.screenshot(path=os.path.join(os.environ["RECSYS_SCREENSHOT_DIR"], "playlist_page.png"))
        finally:
            browser.close()
    from io import BytesIO

    from PIL import Image

    im = Image.open(BytesIO(clip)).convert("RGB")
    px = [im.getpixel((i, j)) for i in range(im.width) for j in range(im.height)]
    assert any(abs(r - 0x7B) < 40 and abs(g - 0x3F) < 40 and b > 180 for r, g, b in px), px[:4]
    assert shot.stat().st_size > 10_000
    assert not problems, problems
