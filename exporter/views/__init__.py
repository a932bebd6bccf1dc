"""Derived views: collectors that read the native families at scrape time and yield other names.

They cost nothing on the hot path and can never disagree with the native families they are built from.
"""

from exporter.views.dynamo import DynamoView
from exporter.views.http import HttpView
from exporter.views.llamacpp import LlamacppView
from exporter.views.sglang import SglangView
from exporter.views.tgi import TgiView
from exporter.views.trtllm import TrtllmView
from exporter.views.vllm import CacheConfig, ModelShape, VllmView

__all__ = [
    "CacheConfig",
    "DynamoView",
    "HttpView",
    "LlamacppView",
    "ModelShape",
    "SglangView",
    "TgiView",
    "TrtllmView",
    "VllmView",
]
