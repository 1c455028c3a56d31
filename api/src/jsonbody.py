"""JSON bodies parsed in a worker thread, so a large body never stalls the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class OffLoopJsonRoute(APIRoute):
    """Parses the JSON body off the loop before FastAPI's handler, which then reuses it.

    A body that does not parse is left to FastAPI, whose own attempt gives the usual 422.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            media_type = request.headers.get("content-type", "").split(";")[0].strip()
            if media_type == "application/json" or media_type.endswith("+json"):
                body = await request.body()
                if body:
                    with contextlib.suppress(ValueError):
                        # Starlette's Request.json() returns this cached value.
                        request._json = await asyncio.to_thread(json.loads, body)
            return await handler(request)

        return parse_then_handle
