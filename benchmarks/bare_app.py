"""The baseline: a bare FastAPI app answering every chat request with one fixed JSON body, or (for a
``.sse`` file) streaming the same server-sent events, one chunk per event, as fakeai sends them."""

import json
import sys

import uvicorn
from fastapi import FastAPI
from starlette.responses import JSONResponse, Response, StreamingResponse

from fakeai.app import NO_OPENTELEMETRY


def main() -> None:
    port, body_path = int(sys.argv[1]), sys.argv[2]
    app = FastAPI(**NO_OPENTELEMETRY)  # configured as fakeai's app is, so only fakeai's own work differs
    if body_path.endswith(".sse"):
        with open(body_path, "rb") as f:
            events = [event + b"\n\n" for event in f.read().split(b"\n\n") if event]

        async def chunks():  # type: ignore[no-untyped-def]
            for event in events:
                yield event

        @app.post("/v1/chat/completions")
        async def stream() -> Response:
            return StreamingResponse(chunks(), media_type="text/event-stream")

    else:
        with open(body_path) as f:
            body = json.load(f)

        @app.post("/v1/chat/completions")
        async def chat() -> JSONResponse:
            return JSONResponse(body)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
