"""What a plugin's QR label opens: a page behind Feishu's web login, served by the ingress (``ingress_routes``).

Flow: a signed link (:class:`engine.labels.LinkKind`; tampered: 403) → no session yet: redirect to
Feishu's web login (``/open-apis/authen/v1/authorize``) → Feishu redirects to ``/{scenario}/auth/callback``
with a one-time code → the code is exchanged for the user (``authen/v1/oidc/access_token`` then
``authen/v1/user_info``) → a signed session cookie (path ``/{scenario}/``) → back to the page. Forms the
page posts carry a CSRF token bound to the cookie. Each scenario signs with its own secret's keys
(:data:`engine.labels.LINKS`, ``SESSIONS``, ``LOGIN_STATE``, ``CSRF``), verifying with every key still
accepted during a rotation.

A plugin makes one :class:`ScanSite` and registers ``site.routes(endpoint)``; its endpoint calls
``await site.open(request, app)`` and gets the organization, the item and the user, or the response to
return (the refusal, or the redirect to the login).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from engine import labels
from engine.labels import CSRF, LOGIN_STATE, SESSIONS, Keys, LinkKind

if TYPE_CHECKING:  # starlette is imported where a page is served, not where the SDK is imported
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
DEFAULT_FEISHU = "https://open.feishu.cn"
LOGIN_STATE_SECONDS = 600

# The page's own words; a plugin's texts add to these (and may replace them).
TEXT = {
    "zh_CN": {"forbidden": "链接无效或已被篡改", "not_found": "未找到该组织",
              "login_failed": "飞书登录失败，请重新扫码", "hello": "您好"},
    "en_US": {"forbidden": "This link is invalid or was altered", "not_found": "No such organization",
              "login_failed": "Feishu login failed; scan again", "hello": "Hello"},
}

STYLE = ("body{font-family:-apple-system,'PingFang SC',sans-serif;margin:0;padding:16px;max-width:480px}"
         "h1{font-size:20px}dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px}dt{color:#666}"
         "button{width:100%;padding:12px;margin:6px 0;font-size:16px;border-radius:8px;border:1px solid #ccc}"
         "button.primary{background:#3370ff;color:#fff;border:none}.msg{padding:10px;border-radius:6px;"
         "background:#f0f4ff;margin:8px 0}.err{background:#fff0f0;color:#c00}input{font-size:16px;padding:8px}"
         "textarea{width:100%;box-sizing:border-box;font-size:16px;padding:8px;min-height:6em}")


def sign_payload(key: bytes, payload: dict[str, Any]) -> str:
    """``body.mac``: the JSON payload (base64url) and its HMAC-SHA256 (a session, a login's state)."""
    body = labels.b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{labels.b64(_payload_mac(key, body))}"


def _payload_mac(key: bytes, body: str) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key, f"session\x1f{body}".encode(), hashlib.sha256).digest()


def read_payload(keys: Keys, token: str | None, *, now: float | None = None) -> dict[str, Any] | None:
    """The payload of a token signed by :func:`sign_payload` with one of ``keys``, or None if forged,
    malformed or expired (its ``exp``, Unix seconds, is past)."""
    import base64
    import hmac

    if not token or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    matches = [hmac.compare_digest(labels.b64(_payload_mac(key, body)).encode(), signature.encode())
               for key in labels.all_keys(keys)]
    if not any(matches):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    if float(payload.get("exp", 0)) < (time.time() if now is None else now):
        return None
    return payload


def public_url(app: Any) -> str:
    """Where browsers reach the ingress (``[ingress] public_url``), without a trailing slash."""
    return (app.config.ingress.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def feishu_base(app: Any) -> str:
    return (app.feishu_base_url or app.config.secret("base_url") or DEFAULT_FEISHU).rstrip("/")


async def exchange_code(app: Any, code: str) -> dict[str, Any]:
    """Feishu web login: the one-time ``code`` → user access token → ``{"open_id", "name"}`` of the user.

    Raises ``PermissionError`` when Feishu refuses a step. Endpoints: Feishu's "获取 user_access_token"
    (``authen/v1/oidc/access_token``) and "获取用户信息" (``authen/v1/user_info``).
    """
    import httpx

    base = feishu_base(app)
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        token_answer = (await http.post("/open-apis/auth/v3/app_access_token/internal", json={
            "app_id": app.config.secret("app_id"), "app_secret": app.config.secret("app_secret")})).json()
        if token_answer.get("code") != 0:
            raise PermissionError(f"app token: {token_answer.get('msg')}")
        headers = {"Authorization": f"Bearer {token_answer['app_access_token']}"}
        exchanged = (await http.post("/open-apis/authen/v1/oidc/access_token", headers=headers,
                                     json={"grant_type": "authorization_code", "code": code})).json()
        if exchanged.get("code") != 0:
            raise PermissionError(f"code exchange: {exchanged.get('msg')}")
        user_token = exchanged["data"]["access_token"]
        info = (await http.get("/open-apis/authen/v1/user_info",
                               headers={"Authorization": f"Bearer {user_token}"})).json()
        if info.get("code") != 0:
            raise PermissionError(f"user info: {info.get('msg')}")
    data = info["data"]
    return {"open_id": data["open_id"], "name": data.get("name", "")}


async def read_form(request: Request) -> dict[str, str]:
    """A posted urlencoded form (parsed here, so the ingress needs no python-multipart)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True)
class Opened:
    """A verified link with a logged-in user: the organization, the item, its link's extra values, the user
    (``{"open_id", "name", "org", "exp"}``) and the page's own path (to post forms to)."""

    org: Any
    item: str
    extra: Mapping[str, str]
    user: dict[str, Any]
    path: str


@dataclass(frozen=True)
class ScanSite:
    """One scenario's label pages: its links, its texts (``{locale: {key: text}}``, adding to :data:`TEXT`;
    ``title`` is the pages' title), how long a login lasts (``session_hours(org)``), and which of the
    scenario's secrets signs (``secret``, its name; None: the first it declares)."""

    scenario: str
    link: LinkKind
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    session_hours: Callable[[Any], float] = lambda org: 12
    secret: str | None = None

    @property
    def cookie(self) -> str:
        """The session cookie's name (its path is ``/{scenario}/``)."""
        return f"{self.scenario}_session"

    def org(self, app: Any, org_id: str) -> Any | None:
        org = app.config.orgs.get(org_id)
        return org if org is not None and org.enabled(self.scenario) else None

    def key(self, org: Any, purpose: str) -> bytes:
        """The key that signs ``purpose`` now for this organization."""
        return bytes(org.keyring(self.scenario, self.secret).key(purpose))

    def keys(self, org: Any, purpose: str) -> tuple[bytes, ...]:
        """Every key that still verifies ``purpose`` (the current one, then previous secrets' during a rotation)."""
        return tuple(org.keyring(self.scenario, self.secret).keys(purpose))

    def text(self, org: Any | None) -> dict[str, str]:
        """The pages' words in the organization's language (zh_CN without one)."""
        locale = org.locale if org is not None and org.locale in TEXT else "zh_CN"
        return {**TEXT[locale], **self.texts.get(locale, {})}

    def page(self, org: Any | None, body: str, status: int = 200) -> HTMLResponse:
        """An HTML page in the organization's language around ``body`` (already escaped)."""
        from starlette.responses import HTMLResponse

        locale = org.locale if org is not None else "zh_CN"
        title = self.text(org).get("title", self.scenario)
        document = (f'<!doctype html><html lang="{locale[:2]}"><head><meta charset="utf-8">'
                    f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}'
                    f"</title><style>{STYLE}</style></head><body>{body}</body></html>")
        return HTMLResponse(document, status_code=status)

    def refusal(self, org: Any | None, reason: str, status: int) -> HTMLResponse:
        return self.page(org, f"<p class='msg err'>{html.escape(self.text(org)[reason])}</p>", status=status)

    def session(self, request: Request, org: Any) -> dict[str, Any] | None:
        payload = read_payload(self.keys(org, SESSIONS), request.cookies.get(self.cookie))
        if payload is None or payload.get("org") != org.id:
            return None
        return payload

    def csrf(self, org: Any, request: Request) -> str:
        """The token forms carry, bound to this browser's session cookie."""
        return labels.mac(self.key(org, CSRF), self.scenario, "csrf", request.cookies.get(self.cookie, ""))

    def csrf_ok(self, org: Any, request: Request, token: str) -> bool:
        return labels.mac_ok(self.keys(org, CSRF), token, self.scenario, "csrf", request.cookies.get(self.cookie, ""))

    @property
    def callback(self) -> str:
        """Where Feishu's web login returns (add it to the app's redirect URLs)."""
        return f"/{self.scenario}/auth/callback"

    def login_redirect(self, app: Any, org: Any, next_path: str) -> RedirectResponse:
        """Send the browser to Feishu's web login; ``state`` (signed) brings it back to ``next_path``."""
        from starlette.responses import RedirectResponse

        state = sign_payload(self.key(org, LOGIN_STATE), {
            "org": org.id, "next": next_path, "exp": time.time() + LOGIN_STATE_SECONDS,
            "nonce": secrets.token_hex(8)})
        query = urlencode({"app_id": app.config.secret("app_id") or "", "redirect_uri": public_url(app) + self.callback,
                           "state": state})
        return RedirectResponse(f"{feishu_base(app)}/open-apis/authen/v1/authorize?{query}", status_code=302)

    async def auth_callback(self, request: Request, app: Any) -> Response:
        """Where Feishu's login redirects: exchange the code, set the session cookie, go back to the page."""
        from starlette.responses import RedirectResponse

        raw_state = request.query_params.get("state", "")
        # the signed state says which organization started the login; check it with that organization's key
        org, state = None, None
        for candidate in app.config.orgs.values():
            if candidate.enabled(self.scenario):
                state = read_payload(self.keys(candidate, LOGIN_STATE), raw_state)
                if state is not None:
                    org = candidate
                    break
        if org is None or state is None:
            return self.refusal(None, "forbidden", 403)
        try:
            user = await exchange_code(app, request.query_params.get("code", ""))
        except (PermissionError, KeyError, ValueError):
            return self.refusal(org, "login_failed", 401)
        hours = self.session_hours(org)
        token = sign_payload(self.key(org, SESSIONS), {
            "org": org.id, "open_id": user["open_id"], "name": user["name"], "exp": time.time() + hours * 3600})
        next_path = str(state.get("next", "/"))
        if not next_path.startswith(f"/{self.scenario}/"):
            next_path = "/"  # never an open redirect
        response = RedirectResponse(next_path, status_code=302)
        response.set_cookie(self.cookie, token, max_age=int(hours * 3600), httponly=True, samesite="lax",
                            secure=public_url(app).startswith("https://"), path=f"/{self.scenario}/")
        return response

    async def open(self, request: Request, app: Any) -> Opened | Response:
        """The link's organization, item and user, or the response to return: 404 for an organization
        that does not run the scenario, 403 for a link not signed by it, the login when no one is logged in."""
        org_id, item = request.path_params["org"], request.path_params["item"]
        org = self.org(app, org_id)
        if org is None:
            return self.refusal(None, "not_found", 404)
        extra = {name: request.query_params.get(name, "") for name in self.link.extra}
        if not self.link.verify(self.keys(org, labels.LINKS), org_id, item, request.query_params.get("sig"), extra):
            return self.refusal(org, "forbidden", 403)
        path = self.link.path(self.key(org, labels.LINKS), org_id, item, extra)
        user = self.session(request, org)
        if user is None:
            return self.login_redirect(app, org, path)
        return Opened(org=org, item=item, extra=extra, user=user, path=path)

    def routes(self, endpoint: Callable[[Request, Any], Awaitable[Response]],
               methods: tuple[str, ...] = ("GET", "POST")) -> list[tuple[str, Any, list[str]]]:
        """``(path, endpoint, methods)`` for ``ingress_routes``: the page at ``{route}/{org}/{item}`` and the
        login's callback."""
        return [(f"{self.link.route}/{{org}}/{{item}}", endpoint, list(methods)),
                (self.callback, self.auth_callback, ["GET"])]
