"""The page in a real browser: Playwright drives Debian's Chromium against the server on a free loopback port.

Search, click a result, see >= 5 recommendations with reasons, open a report, see the map; no console
errors. The Makefile installs /usr/bin/chromium; Playwright's own browser download is never used.
"""
from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # drives Chromium: not in make test-fast
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium not installed (make test installs it with apt-get)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from recsys.engine import Engine
    from recsys.serve import ServeOptions, create_app
    from recsys.serve.testing import serve_in_thread
    from recsys.testing.engine import fast_config, make_catalog

    out = tmp_path_factory.mktemp("browser") / "index"
    Engine.build(make_catalog(160), simulate_users=60, out=out, config=fast_config(genre_probs=False), seed=0)
    with serve_in_thread(create_app(ServeOptions(index=str(out)))) as url:
        yield url


def test_search_recommend_report_map(server, tmp_path):
    problems: list[str] = []
    external: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: None if r.url.startswith(server) or r.url.startswith("data:")
                    else external.append(r.url))
            page.goto(server + "/")
            map_el = page.get_by_test_id("map")
            map_el.wait_for()
            page.wait_for_function("document.querySelector('[data-testid=map]').dataset.points === '160'")
            box = map_el.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 300

            # the box asks the index's FTS5 search: words in any order, accents folded, exact title first
            page.get_by_test_id("search").fill("1 SÖNG")
            page.wait_for_function("(() => { const r = document.querySelector('[data-testid=search-result]');"
                                   " return r && r.dataset.id === 't0001'; })()")
            page.get_by_test_id("search").fill("song 1")
            results = page.get_by_test_id("search-result")
            page.wait_for_function("document.querySelectorAll('[data-testid=search-result]').length >= 5")
            assert results.count() >= 5
            first_id = results.first.get_attribute("data-id")
            results.first.click()

            recs = page.get_by_test_id("recommendation")
            page.wait_for_function("document.querySelectorAll('[data-testid=recommendation]').length >= 5")
            assert recs.count() >= 5
            for i in range(recs.count()):
                assert recs.nth(i).get_by_test_id("reason").count() >= 1
                assert recs.nth(i).get_by_test_id("reason").first.inner_text().strip()
            assert page.get_by_test_id("recent-item").count() == 1
            assert page.get_by_test_id("recent-item").first.get_attribute("data-id") == first_id

            # hover the first recommendation's point: the tooltip names it; then zoom and pan
            rec_id = recs.first.get_attribute("data-id")
            x, y = page.evaluate(f"toScreen(state.byId.get({rec_id!r}))")
            page.mouse.move(box["x"] + x, box["y"] + y)
            tip = page.get_by_test_id("map-tooltip")
            tip.wait_for(state="visible")
            assert "cluster" in tip.inner_text()
            page.mouse.wheel(0, -400)
            page.wait_for_function("state.view.scale > 1.2")
            page.mouse.move(box["x"] + 40, box["y"] + 200)
            page.mouse.down()
            page.mouse.move(box["x"] + 140, box["y"] + 260, steps=5)
            page.mouse.up()
            assert page.evaluate("state.view.tx") != 0

            recs.first.get_by_test_id("report-link").click()
            img = page.get_by_test_id("report-image")
            img.wait_for()
            page.wait_for_function("(() => { const i = document.querySelector('[data-testid=report-image]');"
                                   " return i.complete && i.naturalWidth > 500; })()")
            page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)
            page.get_by_text("close").click()

            page.get_by_test_id("color-by").select_option("cluster")
            page.screenshot(path=str(tmp_path / "serve_page_clusters.png"))
        finally:
            browser.close()
    assert (tmp_path / "serve_page.png").stat().st_size > 10_000
    assert not problems, problems
    assert not external, f"the page fetched from outside the server: {external}"
