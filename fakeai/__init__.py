"""fakeai: an OpenAI-compatible fake LLM server that behaves like vLLM under load."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version number: the distribution's (pyproject.toml). The CLI, the app, /health and the
    # OpenAPI document all read it from here.
    __version__ = version("fakeai")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
