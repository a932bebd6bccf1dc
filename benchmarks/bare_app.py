"""The baseline: a bare FastAPI app answering every chat request with one fixed JSON body."""

import json
import sys

import uvicorn
from fastapi import FastAPI
from starlette.responses import JSONResponse

from fakeai.app import NO_OPENTELEMETRY


def main() -> None:
    port, body_path = int(sys.argv[1]), sys.argv[2]
    with open(body_path) as f:
        body = json.load(f)
    app = FastAPI(**NO_OPENTELEMETRY)  # configured as fakeai's app is, so only fakeai's own work differs

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        return JSONResponse(body)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
