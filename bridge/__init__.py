"""The /metrics/stream WebSocket bridge: samples a registry into category-grouped JSON.

Depends on prometheus-client and starlette only, never on ``fakeai``. Built in issue 3; the package
exists now so that the distribution's import packages are settled.
"""
