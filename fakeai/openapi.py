"""OpenAPI entries for the routes served as plain Starlette routes (the hot generation endpoints)."""

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from fastapi import FastAPI
from starlette.routing import Route


class DocumentedRoute(Route):
    """A Starlette route that carries what /docs should say about it."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        body: type[msgspec.Struct],
        tag: str,
        summary: str,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, include_in_schema=False)
        self.body, self.tag, self.summary = body, tag, summary


def add_to_schema(app: FastAPI, routes: Sequence[DocumentedRoute]) -> None:
    """Extend FastAPI's generated schema with ``routes``, request bodies included."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        refs, bodies = msgspec.json.schema_components(
            [route.body for route in routes], ref_template="#/components/schemas/{name}"
        )
        components.update(bodies)
        for route, ref in zip(routes, refs, strict=True):
            operation = {
                "tags": [route.tag],
                "summary": route.summary,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref}},
                },
                "responses": {
                    "200": {"description": "OpenAI-shaped JSON, or server-sent events when `stream` is true"},
                    "default": {"description": "OpenAI error envelope: {error: {message, type, param, code}}"},
                },
            }
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    schema.setdefault("paths", {}).setdefault(route.path, {})[method.lower()] = operation
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
