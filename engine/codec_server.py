"""The codec endpoint: lets authorised operators read encrypted histories in the Web UI and the CLI.

Temporal's codec server protocol (docs.temporal.io/codec-server; temporalio/samples-go
``codec-server/README.md``): ``POST .../encode`` and ``POST .../decode`` with a ``Payloads`` protobuf as
JSON (``{"payloads": [...]}``) in and out; only the last segment of the path counts, so the endpoint can
be mounted under any prefix (the CLI adds none; the Web UI may add the namespace).

Authorisation: every POST needs the configured token, either as ``Authorization: Bearer <token>`` (the
CLI's ``--codec-auth "Bearer <token>"``) or as the first path segment (``http://host:port/<token>``, a
capability URL for the Web UI, which sends no header of its own without OIDC). Anything else is refused
with 401 before the body is read. CORS preflights from the configured Web UI origins are answered
without the token (browsers never send credentials on a preflight).

It runs as its own listener (``engine codec-server``; ``engine dev`` starts one), never inside the
ingress: the ingress faces Feishu and the internet, and this endpoint decrypts whatever it is sent.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024  # a page of history; Temporal's own limit is 2 MB per payload
ALLOWED_HEADERS = "authorization,content-type,x-namespace"


def build_codec_app(codec: PayloadCodec, token: str, cors_origins: Iterable[str] = ()) -> Starlette:
    """The ASGI app. ``token`` must be non-empty; ``cors_origins`` are exact origins (scheme://host:port)."""
    if not token:
        raise ValueError("the codec endpoint needs a non-empty token")
    expected = token.encode()
    origins = frozenset(cors_origins)

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Allow-Credentials": "true",
                "Access-Control-Max-Age": "600", "Vary": "Origin"}

    def authorised(request: Request, segments: list[str]) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return True
        return len(segments) >= 2 and hmac.compare_digest(segments[0].encode(), expected)

    async def endpoint(request: Request) -> Response:
        segments = [part for part in request.url.path.split("/") if part]
        action = segments[-1] if segments else ""
        headers = cors(request)
        if request.method == "OPTIONS":
            return Response(status_code=204 if headers else 403, headers=headers)
        if action not in ("encode", "decode"):
            return JSONResponse({"error": "not found: POST .../encode or .../decode"}, 404, headers=headers)
        if not authorised(request, segments):
            log.warning("codec endpoint: refused an unauthorised %s from %s", action,
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "unauthorised"}, 401,
                                headers={**headers, "WWW-Authenticate": 'Bearer realm="codec"'})
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, 413, headers=headers)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():  # a body without a length is counted as it comes
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, 413, headers=headers)
        body = b"".join(chunks)
        try:
            payloads = json_format.Parse(body, Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "expected a Payloads object as protobuf JSON"}, 400, headers=headers)
        try:
            coded = await (codec.encode if action == "encode" else codec.decode)(list(payloads.payloads))
        except Exception as error:
            log.warning("codec endpoint: %s failed: %s", action, error)
            return JSONResponse({"error": f"{action} failed: {error}"}, 400, headers=headers)
        text = json_format.MessageToJson(Payloads(payloads=coded))
        return Response(text, media_type="application/json", headers=headers)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST", "OPTIONS"])])
