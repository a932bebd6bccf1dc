"""A real headless Chromium (Debian's, driven by Playwright) loads /dashboard and runs the quick start's
JavaScript snippet."""

import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
QUICKSTART = (Path(__file__).resolve().parents[2] / "docs" / "METRICS_STREAMING_QUICKSTART.md").read_text()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        pytest.fail("Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def traffic(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            for stream in (False, True):
                client.post(
                    "/v1/chat/completions",
                    json={
                        "model": MODEL,
                        "max_tokens": 8,
                        "stream": stream,
                        "messages": [{"role": "user", "content": "hi there"}],
                    },
                )
            time.sleep(0.02)


def test_dashboard_shows_live_requests_and_p99(start_server, browser, tmp_path):
    server = start_server("--itl-ms", "3", "--overhead-ms", "2")
    stop = threading.Event()
    load = threading.Thread(target=traffic, args=(server.url, stop))
    load.start()
    try:
        page = browser.new_page()
        page.goto(server.url + "/dashboard")
        page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15_000)
        page.wait_for_function(
            "Number(document.getElementById('requests-per-sec').textContent) > 0"
            " && Number(document.getElementById('latency-p99').textContent) > 0",
            timeout=20_000,
        )
        requests = float(page.text_content("#requests-per-sec"))
        p99 = float(page.text_content("#latency-p99"))
        points = page.get_attribute("#spark-requests polyline", "points")
        screenshot = tmp_path / "dashboard.png"  # kept in the test's folder for a person to look at
        page.screenshot(path=str(screenshot), full_page=True)
        # The controls subscribe: latency only, and the throughput card stops updating.
        page.select_option("#metric-type", "latency")
        page.click("#subscribe")
        page.wait_for_function("document.getElementById('log').textContent.includes('subscribed')", timeout=10_000)
        log = page.text_content("#log")
    finally:
        stop.set()
        load.join()
    assert requests > 0 and p99 > 0
    assert points and len(points.split()) >= 2  # a sparkline from history and updates
    assert screenshot.stat().st_size > 10_000
    assert '"metric_types":["latency"]' in log.replace(" ", "")


def test_quickstart_javascript_snippet_runs_in_the_browser(start_server, browser):
    server = start_server("--no-delay")
    (snippet,) = re.findall(r"```javascript\n(.*?)```", QUICKSTART, flags=re.S)
    snippet = snippet.replace("ws://localhost:8000", server.url.replace("http://", "ws://"))
    page = browser.new_page()
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))
    page.goto(server.url + "/health")
    page.evaluate(f"() => {{ {snippet} }}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(logged) < 2:
        page.wait_for_timeout(200)
    assert len(logged) >= 2, logged  # the snippet logged the messages it received
    # console.log prints parsed objects, which the console's text form shows only as "Object", so
    # check in the page itself that such a socket gets historical_data and then an update.
    kinds = page.evaluate(
        """async (url) => await new Promise((resolve) => {
               const seen = []; const ws = new WebSocket(url);
               ws.onmessage = (e) => { seen.push(JSON.parse(e.data).type); if (seen.length === 2) resolve(seen); };
           })""",
        server.url.replace("http://", "ws://") + "/metrics/stream",
    )
    assert kinds == ["historical_data", "metrics_update"]
