"""The simulation: vLLM-like engines (scheduler, latency, prefix cache, tokens) and fault injection.

Deliberately empty: importing one engine module (the settings import ``faults`` and ``profiles``)
must not load the scheduler, numpy or the exporter. ``fakeai.engines`` builds the engines of a
server from its settings.
"""
