"""Plugin pages served by the ingress (the ``ingress_routes`` hook)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request, Any], Awaitable[Response]]


def plugin_routes(app: Any) -> list[Route]:
    """Collect every plugin's pages; each endpoint is called as ``endpoint(request, app)``."""
    routes: list[Route] = []
    scenarios = set(app.plugins.scenarios)

    def register(path: str, endpoint: Endpoint, methods: Sequence[str] = ("GET",)) -> None:
        head = path.strip("/").split("/", 1)[0]
        if head not in scenarios:
            raise ValueError(f"ingress route {path!r} must start with /<scenario>/ (one of {sorted(scenarios)})")

        async def handle(request: Request, endpoint: Endpoint = endpoint) -> Response:
            return await endpoint(request, app)

        routes.append(Route(path, handle, methods=list(methods)))

    app.plugins.pm.hook.ingress_routes(register=register)
    return routes
