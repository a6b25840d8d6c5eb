"""Tokens, bot info, contact lookups and the H5 OAuth login (authorize → code → user token → user info)."""

from __future__ import annotations

import html
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .base import Ctx, Endpoint, Reply, fail, ok
from .state import App, Token

TOKEN_TTL_REUSE = 1800  # Feishu hands back the same token while it has more than 30 min left
OAUTH_CODE_TTL = 300
REFRESH_TTL = 30 * 86400

# authen error codes
CODE_NOT_FOUND = 20003
CODE_EXPIRED = 20004
CODE_APP_MISMATCH = 20024
REFRESH_INVALID = 20026


def issue_token(ctx: Ctx, app: App, kind: str, open_id: str | None = None) -> Token:
    """Reuse a live token with >30 min left (as Feishu does), otherwise mint a new one."""
    now = time.time()
    if kind != "user":
        for token in ctx.state.tokens.values():
            if (token.app_id == app.app_id and token.kind == kind and token.valid(now)
                    and token.expires_at - now > TOKEN_TTL_REUSE):
                return token
    prefix = {"tenant": "t-", "app": "a-", "user": "u-"}[kind]
    token = Token(value=prefix + secrets.token_hex(20), kind=kind, app_id=app.app_id,
                  expires_at=now + ctx.standin.token_ttl, open_id=open_id)
    ctx.state.tokens[token.value] = token
    return token


def _app_from_body(ctx: Ctx) -> App | Reply:
    body = ctx.json
    app = ctx.state.apps.get(str(body.get("app_id", "")))
    if app is None:
        return fail(400, 10003, "invalid param: app_id not found")
    if body.get("app_secret") != app.app_secret:
        return fail(400, 10014, "app secret invalid")
    return app


async def tenant_access_token(ctx: Ctx) -> Reply:
    app = _app_from_body(ctx)
    if isinstance(app, Reply):
        return app
    token = issue_token(ctx, app, "tenant")
    return Reply(200, {"code": 0, "msg": "ok", "tenant_access_token": token.value,
                       "expire": int(token.expires_at - time.time())})


async def app_access_token(ctx: Ctx) -> Reply:
    app = _app_from_body(ctx)
    if isinstance(app, Reply):
        return app
    token = issue_token(ctx, app, "app")
    return Reply(200, {"code": 0, "msg": "ok", "app_access_token": token.value,
                       "expire": int(token.expires_at - time.time())})


async def bot_info(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    # this legacy endpoint puts the bot at the top level, not under "data"
    return Reply(200, {"code": 0, "msg": "ok", "bot": {
        "activate_status": 2, "app_name": ctx.app.bot_name, "avatar_url": "", "ip_white_list": [],
        "open_id": ctx.app.bot_open_id}})


# ---- contact -----------------------------------------------------------------------------------------

def _user_view(user: dict[str, Any], tenant_key: str) -> dict[str, Any]:
    return {
        "open_id": user["open_id"], "union_id": user["union_id"], "user_id": user["user_id"],
        "name": user["name"], "en_name": user.get("en_name", ""), "email": user.get("email", ""),
        "enterprise_email": user.get("enterprise_email", ""), "mobile": user.get("mobile", ""),
        "department_ids": user.get("department_ids", []), "employee_no": user.get("employee_no", ""),
        "avatar": {"avatar_72": "", "avatar_240": "", "avatar_640": "", "avatar_origin": ""},
        "status": {"is_activated": True, "is_frozen": False, "is_resigned": False},
        "tenant_key": tenant_key,
    }


async def batch_get_id(ctx: Ctx) -> Reply:
    """Emails/mobiles → ids; ``user_id`` holds the id of ``user_id_type`` (open_id by default)."""
    id_type = ctx.query.get("user_id_type", "open_id")
    body = ctx.json
    emails, mobiles = body.get("emails") or [], body.get("mobiles") or []
    if len(emails) > 50 or len(mobiles) > 50:
        return fail(400, 40001, "emails and mobiles take at most 50 entries each")
    found: list[dict[str, Any]] = []
    for email in emails:
        user = ctx.state.find_user(email, "email")
        entry: dict[str, Any] = {"email": email}
        if user:
            entry["user_id"] = user[id_type]
        found.append(entry)
    for mobile in mobiles:
        user = ctx.state.find_user(mobile, "mobile") or ctx.state.find_user(mobile.removeprefix("+86"), "mobile")
        entry = {"mobile": mobile}
        if user:
            entry["user_id"] = user[id_type]
        found.append(entry)
    return ok({"user_list": found})


async def get_user(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    user = ctx.state.find_user(ctx.params["user_id"], ctx.query.get("user_id_type", "open_id"))
    if user is None:
        return fail(400, 41050, "no user authority error")  # Feishu answers this for unknown/out-of-scope users
    return ok({"user": _user_view(user, ctx.app.tenant_key)})


# contact v3 pages hold at most 50 items (Feishu's limit for both listings)
CONTACT_PAGE_MAX = 50


def _contact_page(ctx: Ctx, items: list[dict[str, Any]]) -> Reply:
    """One page of ``items``: ``page_size`` 1..50 (default 50), ``page_token`` the offset this stand-in gave."""
    try:
        size = int(ctx.query.get("page_size") or CONTACT_PAGE_MAX)
        offset = int(ctx.query.get("page_token") or 0)
    except ValueError:
        return fail(400, 99992402, "field validation failed: page_size or page_token")
    if not 1 <= size <= CONTACT_PAGE_MAX or offset < 0:
        return fail(400, 99992402, f"field validation failed: page_size must be 1..{CONTACT_PAGE_MAX}")
    more = offset + size < len(items)
    return ok({"has_more": more, "page_token": str(offset + size) if more else "",
               "items": items[offset:offset + size]})


async def department_children(ctx: Ctx) -> Reply:
    """The sub-departments of ``department_id`` ("0": the root); all descendants with ``fetch_child=true``."""
    parent = ctx.params["department_id"]
    if parent != "0" and parent not in ctx.state.departments:
        return fail(400, 40003, "invalid department_id")
    recursive = str(ctx.query.get("fetch_child", "")).lower() == "true"
    found: list[dict[str, Any]] = []
    parents = [parent]
    while parents:
        current = parents.pop(0)
        children = [d for d in ctx.state.departments.values() if d["parent_department_id"] == current]
        found.extend(children)
        if recursive:
            parents.extend(d["open_department_id"] for d in children)
    return _contact_page(ctx, found)


async def users_by_department(ctx: Ctx) -> Reply:
    """The users directly in ``department_id`` (its sub-departments' users are not listed)."""
    assert ctx.app is not None
    department = ctx.query.get("department_id") or ""
    if department != "0" and department not in ctx.state.departments:
        return fail(400, 40003, "invalid department_id")
    users = [_user_view(u, ctx.app.tenant_key) for u in ctx.state.users.values()
             if department in (u.get("department_ids") or [])]
    return _contact_page(ctx, users)


# ---- OAuth (H5 login inside Feishu) ------------------------------------------------------------------

def _page(status: int, text: str) -> Reply:
    return Reply(status, f"<!doctype html><title>Feishu stand-in</title><p>{html.escape(text)}</p>",
                 media_type="text/html")


async def authorize(ctx: Ctx) -> Reply:
    """Feishu's login page, already logged in: redirect back with a one-time ``code`` and the ``state``.

    The logged-in user is the ``user`` query parameter (open_id, user_id, email or mobile), else the
    stand-in's ``oauth_default_user``, else the first user in the state.
    """
    q = ctx.query
    app = ctx.state.apps.get(q.get("app_id") or q.get("client_id") or "")
    if app is None:
        return _page(400, "unknown app_id")
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return _page(400, "redirect_uri must be an absolute http(s) URL")
    wanted = q.get("user") or ctx.standin.oauth_default_user
    user = ctx.state.find_user(wanted) if wanted else next(iter(ctx.state.users.values()), None)
    if user is None:
        return _page(400, f"no such user in the stand-in: {wanted!r} (add users to its state)")
    code = secrets.token_hex(16)
    ctx.state.oauth_codes[code] = {"app_id": app.app_id, "open_id": user["open_id"],
                                   "redirect_uri": redirect_uri, "expires_at": time.time() + OAUTH_CODE_TTL,
                                   "scope": q.get("scope", "")}
    parts = urlsplit(redirect_uri)
    extra = {"code": code, **({"state": q["state"]} if "state" in q else {})}
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return Reply(302, "", headers={"Location": urlunsplit(parts._replace(query=query))})


def _redeem(ctx: Ctx, code: str, app: App) -> dict[str, Any] | Reply:
    grant = ctx.state.oauth_codes.pop(code, None)  # single use, even when the exchange then fails
    if grant is None:
        return fail(400, CODE_NOT_FOUND, "the authorization code is not found or already used")
    if time.time() >= grant["expires_at"]:
        return fail(400, CODE_EXPIRED, "the authorization code has expired")
    if grant["app_id"] != app.app_id:
        return fail(400, CODE_APP_MISMATCH, "the authorization code and app_id do not match")
    return grant


def _user_tokens(ctx: Ctx, app: App, open_id: str, scope: str) -> dict[str, Any]:
    token = issue_token(ctx, app, "user", open_id=open_id)
    refresh = "ur-" + secrets.token_hex(20)
    ctx.state.refresh_tokens[refresh] = {"app_id": app.app_id, "open_id": open_id, "scope": scope,
                                         "expires_at": time.time() + REFRESH_TTL}
    return {"access_token": token.value, "refresh_token": refresh, "token_type": "Bearer",
            "expires_in": int(token.expires_at - time.time()), "refresh_expires_in": REFRESH_TTL,
            "scope": scope}


def _user_info(ctx: Ctx, app: App, open_id: str) -> dict[str, Any]:
    user = ctx.state.users.get(open_id) or {"open_id": open_id, "union_id": "", "user_id": "", "name": ""}
    return {"name": user["name"], "en_name": user.get("en_name", ""), "avatar_url": "", "avatar_thumb": "",
            "avatar_middle": "", "avatar_big": "", "open_id": user["open_id"], "union_id": user["union_id"],
            "email": user.get("email", ""), "enterprise_email": user.get("enterprise_email", ""),
            "user_id": user["user_id"], "mobile": user.get("mobile", ""), "tenant_key": app.tenant_key,
            "employee_no": user.get("employee_no", "")}


async def oidc_access_token(ctx: Ctx) -> Reply:
    """``POST /authen/v1/oidc/access_token`` (app token auth): code → user_access_token."""
    assert ctx.app is not None
    body = ctx.json
    if body.get("grant_type") != "authorization_code" or not body.get("code"):
        return fail(400, 20001, "invalid request: grant_type must be authorization_code and code is required")
    grant = _redeem(ctx, str(body["code"]), ctx.app)
    if isinstance(grant, Reply):
        return grant
    return ok(_user_tokens(ctx, ctx.app, grant["open_id"], grant["scope"]))


async def v1_access_token(ctx: Ctx) -> Reply:
    """The older ``POST /authen/v1/access_token``: same exchange, the answer also carries the user's profile."""
    reply = await oidc_access_token(ctx)
    if reply.code == 0:
        assert ctx.app is not None
        token = ctx.state.tokens[reply.body["data"]["access_token"]]
        reply.body["data"].update(_user_info(ctx, ctx.app, token.open_id or ""))
    return reply


async def refresh_access_token(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    body = ctx.json
    grant = ctx.state.refresh_tokens.pop(str(body.get("refresh_token", "")), None)
    if body.get("grant_type") != "refresh_token" or grant is None or grant["app_id"] != ctx.app.app_id:
        return fail(400, REFRESH_INVALID, "refresh token invalid")
    return ok(_user_tokens(ctx, ctx.app, grant["open_id"], grant["scope"]))


async def oauth_v2_token(ctx: Ctx) -> Reply:
    """``POST /authen/v2/oauth/token``: the OAuth 2.0 form, client credentials in the body, flat answer."""
    body = ctx.json
    app = ctx.state.apps.get(str(body.get("client_id", "")))
    if app is None or body.get("client_secret") != app.app_secret:
        return Reply(400, {"code": 20002, "error": "invalid_client",
                           "error_description": "client_id or client_secret is invalid"})
    if body.get("grant_type") == "refresh_token":
        grant = ctx.state.refresh_tokens.pop(str(body.get("refresh_token", "")), None)
        if grant is None or grant["app_id"] != app.app_id:
            return Reply(400, {"code": REFRESH_INVALID, "error": "invalid_grant",
                               "error_description": "refresh token invalid"})
    elif body.get("grant_type") == "authorization_code":
        grant = _redeem(ctx, str(body.get("code", "")), app)
        if isinstance(grant, Reply):
            return Reply(400, {"code": grant.code, "error": "invalid_grant",
                               "error_description": grant.body["msg"]})
    else:
        return Reply(400, {"code": 20001, "error": "unsupported_grant_type",
                           "error_description": "grant_type must be authorization_code or refresh_token"})
    tokens = _user_tokens(ctx, app, grant["open_id"], grant["scope"])
    tokens["refresh_token_expires_in"] = tokens.pop("refresh_expires_in")
    return Reply(200, {"code": 0, **tokens})


async def user_info(ctx: Ctx) -> Reply:
    assert ctx.app is not None and ctx.token is not None
    return ok(_user_info(ctx, ctx.app, ctx.token.open_id or ""))


ENDPOINTS = [
    Endpoint("POST", "/open-apis/auth/v3/tenant_access_token/internal", tenant_access_token, auth="none"),
    Endpoint("POST", "/open-apis/auth/v3/app_access_token/internal", app_access_token, auth="none"),
    Endpoint("GET", "/open-apis/bot/v3/info", bot_info),
    Endpoint("POST", "/open-apis/contact/v3/users/batch_get_id", batch_get_id),
    Endpoint("GET", "/open-apis/contact/v3/users/find_by_department", users_by_department),
    Endpoint("GET", "/open-apis/contact/v3/users/{user_id}", get_user),
    Endpoint("GET", "/open-apis/contact/v3/departments/{department_id}/children", department_children),
    Endpoint("GET", "/open-apis/authen/v1/authorize", authorize, auth="none"),
    Endpoint("GET", "/open-apis/authen/v1/index", authorize, auth="none"),
    Endpoint("POST", "/open-apis/authen/v1/oidc/access_token", oidc_access_token, auth="tenant_or_app"),
    Endpoint("POST", "/open-apis/authen/v1/access_token", v1_access_token, auth="tenant_or_app"),
    Endpoint("POST", "/open-apis/authen/v1/oidc/refresh_access_token", refresh_access_token,
             auth="tenant_or_app"),
    Endpoint("POST", "/open-apis/authen/v1/refresh_access_token", refresh_access_token, auth="tenant_or_app"),
    Endpoint("POST", "/open-apis/authen/v2/oauth/token", oauth_v2_token, auth="none"),
    Endpoint("GET", "/open-apis/authen/v1/user_info", user_info, auth="user"),
]
