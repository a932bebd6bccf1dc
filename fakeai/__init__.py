"""fakeai: an OpenAI-compatible fake LLM server that behaves like vLLM under load."""

__version__ = "0.1.0"
