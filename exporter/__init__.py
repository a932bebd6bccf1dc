"""Metric definitions and exposition: the only package that knows metric names.

Importing the package loads nothing: ``exporter.buckets`` (pure bounds and their validation) and
``exporter.vllm_releases`` (vLLM's retired names by release) are read by the settings, which must stay cheap
to import; ``exporter.metrics`` brings prometheus-client.
"""
