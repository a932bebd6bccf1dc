"""The pytest plugin as a user meets it: auto-loaded in a fresh test directory, real server, real asserts."""

import re
from pathlib import Path

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.fakeai("--no-delay", models=[MODEL])
def test_counts_and_histograms(fakeai_client, fakeai_metrics):
    with fakeai_metrics.delta() as d:
        for _ in range(3):
            fakeai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=4, extra_body={"ignore_eos": True})
    assert d.value("fakeai_requests_total", model=MODEL) == 3
    assert d.value("fakeai_completion_tokens_total", endpoint="/v1/chat/completions") == 12
    assert d.value("vllm:request_success_total", model_name=MODEL, finished_reason="length") == 3
    ttft = d.histogram("fakeai_time_to_first_token_seconds", model=MODEL)
    assert ttft.count == 3 and max(ttft.buckets.values()) == 3
    fakeai_metrics.assert_value("fakeai_requests_total", 3, delta=d, model=MODEL)
    assert fakeai_metrics.value("fakeai_requests_running") == 0


@pytest.mark.parametrize("fakeai_server", [{"no_delay": True, "api_keys": ["sk-1"]}], indirect=True)
def test_settings_by_parameter(fakeai_server):
    import httpx
    assert httpx.get(fakeai_server.url + "/v1/models").status_code == 401


def test_in_process_registry():
    from prometheus_client import CollectorRegistry, Counter
    from fakeai.testing import Metrics
    registry = CollectorRegistry()
    counter = Counter("jobs", "jobs", ["kind"], registry=registry)
    metrics = Metrics.of_registry(registry)
    with metrics.delta() as d:
        counter.labels("a").inc(2)
    assert d.value("jobs_total", kind="a") == 2


@pytest.mark.fakeai("--no-delay")
def test_deliberately_wrong(fakeai_client, fakeai_metrics):
    with fakeai_metrics.delta() as d:
        fakeai_client.models.list()
    fakeai_metrics.assert_value("fakeai_requests_total", 1, delta=d, model=MODEL)
"""


def readme_example() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return next(block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "fakeai_metrics" in block)


def test_a_user_suite_runs_with_the_auto_loaded_plugin(pytester):
    pytester.makepyfile(test_user=USER_TESTS, test_readme=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=4, failed=1)
    output = result.stdout.str()
    # The failure names the metric and its labels.
    assert 'fakeai_requests_total{model="meta-llama/Llama-3.1-8B-Instruct"} changed by 0, expected 1' in output
