"""A scraper hitting /metrics three times a second (as NVIDIA AIPerf does) does not move what clients
measure: their TTFT p50 and p90 stay in the buckets where the server recorded them."""

import json
import subprocess
import sys
import threading

import httpx
import numpy as np

from bridge.reader import scrape
from fakeai.tools.compare import agrees, bucket_of

MODEL = "m"
TTFT = "fakeai_time_to_first_token_seconds"


class Scraper(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.scrapes = url, threading.Event(), 0

    def run(self) -> None:
        with httpx.Client(headers={"accept-encoding": "gzip"}) as client:
            while not self.stop.wait(1 / 3):
                client.get(self.url + "/metrics").raise_for_status()
                self.scrapes += 1


def test_client_ttft_agrees_with_the_server_while_a_scraper_runs(start_server):
    # TTFT = 110 ms of API overhead + at most two 10 ms engine steps: well inside (0.1, 0.15], with room
    # on both sides for the client's own milliseconds on a busy machine.
    server = start_server(
        *("--models", MODEL, "--overhead-ms", "110", "--itl-ms", "10", "--itl-jitter", "0"),
        *("--prefill-ms-per-token", "0"),
    )
    traffic = [sys.executable, "-m", "fakeai.traffic", "--url", server.url, "--model", MODEL]
    subprocess.run([*traffic, "--requests", "16"], capture_output=True, check=True, timeout=120)  # warm up
    before = scrape(server.url)
    scraper = Scraper(server.url)
    scraper.start()
    try:
        run = subprocess.run(
            [*traffic, "--requests", "200", "--concurrency", "8"], capture_output=True, check=True, timeout=300
        )
    finally:
        scraper.stop.set()
        scraper.join()
    server_ttft = scrape(server.url).histogram(TTFT, model=MODEL) - before.histogram(TTFT, model=MODEL)
    timings = json.loads(run.stdout)["timings"]
    client = [t["ttft"] for t in timings if t["status"] == 200 and t["ttft"] is not None]
    assert len(client) == 200 == server_ttft.count and scraper.scrapes >= 3
    for q in (0.5, 0.9):
        bucket = bucket_of(server_ttft, q)
        assert agrees(float(np.quantile(client, q)), bucket), (q, np.quantile(client, q), bucket)
