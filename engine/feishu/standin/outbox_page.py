"""``GET /_standin/``: the outbox as a Feishu user would see it, newest first.

Cards are drawn by :mod:`.cardview` (header colour, markdown, fields, buttons, forms); each message says
its organization, its chat (a person's name for a p2p chat, the group's name for a group), its plugin,
whether it is pinned, updated or recalled, what it replies to, and when, in the organization's zone.

Query parameters: ``org`` (a tenant key), ``plugin`` (a plugin name, or ``-`` for messages of no known
plugin), ``chat`` (a chat id), ``tz`` (an IANA zone for every time instead of each organization's),
``limit`` (messages shown, default 100), ``refresh=0`` (no reload every 5 s). An unknown ``tz`` is named
on the page and the organizations' zones are used.

Message content is untrusted: it is escaped by :mod:`.cardview`; the page also sends a Content Security
Policy that lets only its own script run.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .cardview import View, esc
from .outbox import DEFAULT_ZONE, Outbox, zone_named

if TYPE_CHECKING:
    from .core import FeishuStandIn, SentMessage

NO_PLUGIN = "-"
DEFAULT_LIMIT = 100


def render_page(standin: FeishuStandIn, query: Mapping[str, str] | None = None) -> str:
    """The outbox page for ``query`` (the request's query parameters)."""
    query = query or {}
    tz_asked = (query.get("tz") or "").strip()
    zone = zone_named(tz_asked) if tz_asked else None
    outbox = Outbox(standin, zone)
    rows = outbox.rows()
    org, plugin, chat = query.get("org", ""), query.get("plugin", ""), query.get("chat", "")
    try:
        limit = max(1, int(query.get("limit", DEFAULT_LIMIT)))
    except ValueError:
        limit = DEFAULT_LIMIT
    shown = [(m, row) for m, row in rows
             if (not org or row["tenant_key"] == org)
             and (not plugin or row["plugin"] == ("" if plugin == NO_PLUGIN else plugin))
             and (not chat or row["chat_id"] == chat)]
    newest = list(reversed(shown))[:limit]
    view = View(outbox.user_name)
    articles = "\n".join(_article(standin, outbox, view, m, row) for m, row in newest)
    if not articles:
        articles = '<p class="empty">No messages yet.</p>' if not rows else '<p class="empty">No message matches.</p>'
    nonce = secrets.token_urlsafe(12)
    refresh = query.get("refresh", "1") not in ("0", "false", "no")
    return _PAGE.format(
        csp=esc(f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
                "form-action 'self'; base-uri 'none'"),
        style=_STYLE, nonce=nonce,
        info=_info(standin, len(rows)), filters=_filters(standin, outbox, rows, query),
        zone_note=_zone_note(standin, outbox, zone, tz_asked),
        count=f"{len(newest)} of {len(shown)} message(s)" + ("" if len(shown) == len(rows) else
                                                              f" ({len(rows)} in all)"),
        articles=articles, script=_SCRIPT.format(nonce=nonce) if refresh else "")


def _info(standin: FeishuStandIn, total: int) -> str:
    apps = ", ".join(f"{a.bot_name} ({a.app_id})" for a in standin.state.apps.values())
    return (f"{esc(standin.base_url or '')} · bots: {esc(apps)} · {total} message(s) · {len(standin.calls)} API "
            f"calls · {len(standin.faults.active())} active fault(s) · "
            '<a href="/_standin/outbox">outbox JSON</a> · <a href="/_standin/calls">calls JSON</a> · '
            '<a href="/_standin/state">state JSON</a>')


def _option(value: str, label: str, chosen: str) -> str:
    selected = " selected" if value == chosen else ""
    return f'<option value="{esc(value)}"{selected}>{esc(label)}</option>'


def _filters(standin: FeishuStandIn, outbox: Outbox, rows: list[tuple[SentMessage, dict[str, Any]]],
             query: Mapping[str, str]) -> str:
    tenants = {key: str(t.get("name") or key) for key, t in standin.state.tenants.items()}
    for _, row in rows:
        tenants.setdefault(row["tenant_key"], row["org_name"])
    plugins = sorted(outbox.known_plugins | {row["plugin"] for _, row in rows if row["plugin"]})
    org_options = _option("", "all organizations", query.get("org", "")) + "".join(
        _option(key, f"{name} ({key})" if name != key else key, query.get("org", ""))
        for key, name in sorted(tenants.items(), key=lambda item: item[1]))
    plugin_options = _option("", "all plugins", query.get("plugin", "")) + "".join(
        _option(p, p, query.get("plugin", "")) for p in plugins) + _option(
        NO_PLUGIN, "no known plugin (text)", query.get("plugin", ""))
    chat = query.get("chat", "")
    keep_chat = f'<input type="hidden" name="chat" value="{esc(chat)}">' if chat else ""
    return (f'<form class="filters" method="get" action="/_standin/">'
            f'<label>Organization <select name="org" id="f-org">{org_options}</select></label>'
            f'<label>Plugin <select name="plugin" id="f-plugin">{plugin_options}</select></label>'
            f'<label>Time zone <input name="tz" id="f-tz" size="16" value="{esc(query.get("tz", ""))}" '
            f'placeholder="organization\'s"></label>{keep_chat}'
            '<button type="submit">Show</button> <a href="/_standin/">reset</a></form>')


def _zone_note(standin: FeishuStandIn, outbox: Outbox, zone: Any, asked: str) -> str:
    if zone is not None:
        return f'Times are in <b class="zone">{esc(zone.key)}</b> (<code>?tz=</code>).'
    named = "; ".join(f"{esc(t.get('name') or key)}: <b class=\"zone\">{esc(outbox.tenant_zone(key))}</b>"
                      for key, t in standin.state.tenants.items())
    unknown = f'Unknown time zone <code>{esc(asked)}</code>; ' if asked else ""
    organizations = f"each organization's own zone ({named}); " if named else ""
    return (f"{unknown}Times are in {organizations}an organization the stand-in does not know uses "
            f'<b class="zone">{DEFAULT_ZONE}</b>. Add <code>?tz=Europe/Berlin</code> to see another zone.')


def _where(row: dict[str, Any]) -> str:
    if row["chat_type"] == "p2p":
        who = row["peer"] or row["to"] or row["chat_id"]
        chat = f'<span class="chat p2p" title="{esc(row["chat_id"])}">👤 {esc(who)} <small>p2p</small></span>'
    else:
        name = row["chat_name"]
        label = esc(name) if name else f"<code>{esc(row['chat_id'])}</code>"
        chat = (f'<a class="chat group" href="?chat={esc(row["chat_id"])}" title="{esc(row["chat_id"])}">'
                f"👥 {label}</a>")
    parts = [f'<span class="org" title="{esc(row["tenant_key"])}">{esc(row["org_name"])}</span>', chat]
    if row["plugin"]:
        parts.append(f'<span class="plugin">{esc(row["plugin"])}</span>')
    if row["pinned"]:
        parts.append('<span class="badge pinned">📌 pinned</span>')
    if row["updated"]:
        parts.append(f'<span class="badge updated">✎ updated ×{row["earlier_versions"] or 1}</span>')
    if row["deleted"]:
        parts.append('<span class="badge recalled">recalled</span>')
    return " ".join(parts)


def _quote(standin: FeishuStandIn, outbox: Outbox, view: View, parent_id: str) -> str:
    parent = standin.state.messages.get(parent_id)
    if parent is None:
        return f'<div class="quote">↩ reply to <code>{esc(parent_id)}</code></div>'
    sender = parent.get("sender") or {}
    who = outbox.user_name(str(sender.get("id", ""))) or str(sender.get("id", ""))
    raw = (parent.get("body") or {}).get("content", "")
    try:
        content = json.loads(raw)
    except (TypeError, ValueError):
        content = raw
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        # a user's message names whom it mentions by key (@_user_1) in its text, and who that is in mentions
        said = content["text"][:300]
        for mention in parent.get("mentions") or []:
            if isinstance(mention, dict) and mention.get("key") and mention.get("name"):
                said = said.replace(str(mention["key"]), f"@{mention['name']}")
        text = view.text_message(said)
    elif parent.get("msg_type") == "interactive":
        text = "[card]"
    else:
        text = esc(str(content)[:300])
    return f'<div class="quote">↩ <b>{esc(who)}</b>: {text}</div>'


def _content(view: View, m: SentMessage) -> str:
    if m.msg_type == "interactive":
        return view.card(m.content)
    if m.msg_type == "text":
        return f'<div class="bubble">{view.text_message(m.content if isinstance(m.content, str) else "")}</div>'
    if m.msg_type == "post":
        return f'<div class="bubble">{view.post(m.content)}</div>'
    return f'<div class="bubble unknown">[{esc(m.msg_type)}]</div>'


def _earlier(view: View, m: SentMessage) -> str:
    if not m.history:
        return ""
    versions = []
    for raw in reversed(m.history):
        try:
            versions.append(view.card(json.loads(raw)))
        except ValueError:
            versions.append(f"<pre>{esc(raw)}</pre>")
    return (f'<details class="history"><summary>{len(m.history)} earlier version(s)</summary>'
            f'{"".join(versions)}</details>')


def _article(standin: FeishuStandIn, outbox: Outbox, view: View, m: SentMessage, row: dict[str, Any]) -> str:
    app = standin.state.apps.get(m.app_id)
    bot = app.bot_name if app is not None else "Bot"
    raw = json.dumps({"message_id": m.message_id, "msg_type": m.msg_type, "content": m.content},
                     ensure_ascii=False, indent=1)
    quote = _quote(standin, outbox, view, m.reply_to) if m.reply_to else ""
    recalled = " recalled" if m.deleted else ""
    return (f'<article class="msg{recalled}" id="{esc(m.message_id)}" data-tenant="{esc(row["tenant_key"])}" '
            f'data-plugin="{esc(row["plugin"])}" data-type="{esc(m.msg_type)}">'
            f'<div class="where">{_where(row)}</div>'
            f'<div class="row"><div class="avatar">{esc(bot[:1])}</div><div class="main">'
            f'<div class="meta"><span class="sender">{esc(bot)}</span> '
            f'<time datetime="{esc(row["time_iso"])}">{esc(row["time"])} '
            f'<span class="zone">{esc(row["zone"])}</span></time></div>'
            f'{quote}{_content(view, m)}{_earlier(view, m)}'
            f'<details class="raw"><summary>raw JSON</summary><pre>{html.escape(raw)}</pre></details>'
            "</div></div></article>")


_SCRIPT = """<script nonce="{nonce}">
// reload every 5 s, unless the reader opened something or selected text
setInterval(function () {{
  if (document.hidden || document.querySelector('details[open]') || String(window.getSelection())) return;
  location.reload();
}}, 5000);
</script>"""

_STYLE = """
body{font-family:-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0;
background:#f2f3f5;color:#1f2329;font-size:14px}
header.top{background:#fff;padding:12px 24px;border-bottom:1px solid #dee0e3;position:sticky;top:0;z-index:2}
h1{font-size:18px;margin:0 0 4px}.info{color:#646a73;margin:0 0 8px;font-size:12px}
.filters{display:flex;gap:14px;align-items:center;flex-wrap:wrap}.filters select,.filters input{font-size:13px}
.zone-note{color:#646a73;margin:8px 0 0;font-size:12px}.count{color:#8f959e;font-size:12px;margin:0}
main{max-width:760px;margin:16px auto;padding:0 16px}.empty{color:#8f959e;text-align:center;padding:40px}
article.msg{background:#fff;border-radius:8px;padding:10px 14px;margin:0 0 14px;box-shadow:0 1px 2px #0000000d}
article.recalled .card,article.recalled .bubble{opacity:.45}
.where{font-size:12px;color:#646a73;margin-bottom:8px;display:flex;gap:8px;flex-wrap:wrap;align-items:center}
.where .org{background:#f0f4ff;color:#245bdb;border-radius:4px;padding:1px 6px}
.where .chat{color:#1f2329;text-decoration:none;font-weight:600}.where small{color:#8f959e;font-weight:400}
.where .plugin{background:#f2f3f5;border-radius:4px;padding:1px 6px;font-family:monospace}
.badge{border-radius:4px;padding:1px 6px}.pinned{background:#fff3e8;color:#b35900}
.updated{background:#e8f8f2;color:#077a4b}.badge.recalled{background:#f2f3f5;color:#8f959e}
.row{display:flex;gap:10px}.avatar{width:32px;height:32px;border-radius:50%;background:#3370ff;color:#fff;
display:flex;align-items:center;justify-content:center;font-weight:600;flex:none}.main{flex:1;min-width:0}
.meta{font-size:12px;color:#8f959e;margin-bottom:4px}.meta .sender{color:#1f2329;font-weight:600;margin-right:6px}
.meta .zone{background:#f2f3f5;border-radius:3px;padding:0 4px}
.bubble{background:#e1eaff;border-radius:8px;padding:8px 12px;white-space:pre-wrap;word-break:break-word;
display:inline-block;max-width:100%;box-sizing:border-box}
.quote{border-left:3px solid #bbbfc4;color:#646a73;padding:2px 8px;margin:2px 0 6px;font-size:13px;
white-space:pre-wrap}
.at{color:#3370ff}
.card{background:#fff;border:1px solid #dee0e3;border-radius:8px;overflow:hidden;max-width:560px;margin:2px 0}
.card-header{padding:12px 14px}.card-title{font-size:16px;font-weight:600;line-height:1.5}
.card-subtitle{font-size:13px;opacity:.8;margin-top:2px}.card-body{padding:10px 14px 12px}
.hdr-default{background:#fff;color:#1f2329;border-bottom:1px solid #eff0f1}
.hdr-blue{background:#e1eaff;color:#1c4cba}.hdr-wathet{background:#d9f3fd;color:#0b6e99}
.hdr-turquoise{background:#d5f6f2;color:#067266}.hdr-green{background:#d9f5d6;color:#237b19}
.hdr-lime{background:#eef6c6;color:#587400}.hdr-yellow{background:#faf1d1;color:#806200}
.hdr-orange{background:#feead2;color:#a85200}.hdr-red{background:#fde2e2;color:#b92929}
.hdr-carmine{background:#fde1ea;color:#aa1a57}.hdr-violet{background:#f5e1f8;color:#862b9e}
.hdr-purple{background:#ece2fe;color:#5f26c4}.hdr-indigo{background:#e0e2fa;color:#3a3ab0}
.hdr-grey{background:#eff0f1;color:#474b52}
.el{margin:6px 0}.md-p{line-height:1.6;word-break:break-word}.md ul,.md ol{margin:2px 0;padding-left:20px}
.md-h{margin:4px 0}.align-center{text-align:center}.align-right{text-align:right}
code{background:#f2f3f5;border-radius:3px;padding:0 3px;font-size:12px}
hr{border:none;border-top:1px solid #dee0e3;margin:10px 0}
.c-red{color:#f54a45}.c-green{color:#2ea121}.c-grey{color:#8f959e}.c-blue{color:#3370ff}
.c-orange{color:#ff8800}.c-yellow{color:#dc9b04}.c-carmine{color:#f01d94}.c-violet{color:#d136d1}
.c-purple{color:#7f3bf5}.c-indigo{color:#4954e6}.c-wathet{color:#1eb5f0}.c-turquoise{color:#00b8a9}
.c-lime{color:#8fb200}
.tag{font-size:12px;border-radius:4px;padding:0 6px;margin-left:6px;font-weight:400}
.tag-grey{background:#eff0f1;color:#474b52}.tag-blue{background:#e1eaff;color:#1c4cba}
.tag-red{background:#fde2e2;color:#b92929}.tag-green{background:#d9f5d6;color:#237b19}
.tag-orange{background:#feead2;color:#a85200}.tag-yellow{background:#faf1d1;color:#806200}
.div-text{margin-bottom:6px}.fields{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px}
.field.long{grid-column:1/-1}
.columns{display:flex;gap:12px}.column{flex:1 1 0;min-width:0}
.note{font-size:12px;color:#8f959e}.img-ph{background:#f2f3f5;color:#8f959e;border:1px dashed #c9cdd4;
border-radius:6px;padding:18px;text-align:center;font-size:12px}.img-ph.small{padding:0 4px}
.btn{font:inherit;font-size:14px;border-radius:6px;padding:4px 14px;margin:4px 8px 4px 0;background:#fff;
border:1px solid #d0d3d6;color:#1f2329;cursor:default}
.btn-primary{border-color:#3370ff;color:#3370ff}.btn-danger{border-color:#f54a45;color:#f54a45}
.btn-primary_filled{background:#3370ff;border-color:#3370ff;color:#fff}
.btn-danger_filled{background:#f54a45;border-color:#f54a45;color:#fff}
.btn-text,.btn-primary_text,.btn-danger_text{border-color:transparent}.btn-primary_text{color:#3370ff}
.btn-danger_text{color:#f54a45}.btn-laser{border-color:#8b5cf6;color:#7c3aed}.btn.disabled{opacity:.5}
.form{border:1px solid #eff0f1;border-radius:6px;padding:4px 10px}
.field-input .label{font-size:13px;margin-bottom:2px}.req{color:#f54a45;margin-right:2px}
.field-input input,.field-input textarea{width:100%;box-sizing:border-box;border:1px solid #d0d3d6;
border-radius:6px;padding:5px 8px;font:inherit;background:#fff}
.select{display:flex;justify-content:space-between;border:1px solid #d0d3d6;border-radius:6px;padding:5px 8px;
position:relative}.select.empty span:first-child{color:#8f959e}.select .caret{color:#8f959e}
.select .options{display:none}.select:hover .options{display:block;position:absolute;top:100%;left:0;right:0;
background:#fff;border:1px solid #d0d3d6;border-radius:6px;margin:2px 0;padding:4px 8px;list-style:none;
z-index:1}
.panel summary{cursor:pointer;font-weight:600}.unknown{color:#8f959e;font-family:monospace}
.chart-title{font-weight:600;font-size:13px;margin-bottom:4px}.chart-svg{width:100%;height:auto;display:block}
.chart-svg .axis{stroke:#d0d3d6}.chart-svg text{font-size:11px;fill:#646a73;text-anchor:middle}
.chart-svg text.end{text-anchor:end}.chart-svg text.val{font-size:10px}
.chart-legend{font-size:12px;color:#646a73}.legend-item{margin-right:10px}
.legend-item i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
details.raw,details.history{margin-top:6px;font-size:12px;color:#646a73}
details.raw pre{background:#f7f8fa;border-radius:6px;padding:8px;white-space:pre-wrap;word-break:break-all;
max-height:400px;overflow:auto}
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Feishu stand-in · outbox</title>
<style>{style}</style></head>
<body><header class="top"><h1>Feishu stand-in · outbox</h1>
<p class="info">{info}</p>
{filters}
<p class="zone-note" id="zone-note">{zone_note}</p>
<p class="count">{count}</p></header>
<main>
{articles}
</main>
{script}
</body></html>"""
