"""``engine approvals``: what an organization's Feishu app needs for the engine's approvals.

Feishu pushes an approval definition's events only to apps that subscribed to that definition
(``POST /open-apis/approval/v4/approvals/{approval_code}/subscribe``, once per app and definition; Feishu's
"订阅审批事件" page), besides subscribing to the event itself in the developer console.
"""

from __future__ import annotations

import click

from engine.cli import CliState, Fail, _config_option, _say, pass_app, run_async


@click.group()
def approvals() -> None:
    """Feishu approvals: subscribe the app to the definitions the engine asks for."""


@approvals.command("subscribe")
@_config_option
@click.argument("approval_codes", nargs=-1, required=True)
@pass_app
@run_async
async def approvals_subscribe(state: CliState, approval_codes: tuple[str, ...]) -> None:
    """Have Feishu push this app the events of each definition APPROVAL_CODES names."""
    from engine.feishu.client import FeishuClient
    from engine.feishu.errors import FeishuError

    failed = []
    async with FeishuClient.from_config(state.config()) as client:
        for code in approval_codes:
            try:
                await client.subscribe_approval(code)
            except FeishuError as error:
                failed.append(code)
                _say(f"{code}: refused: {error}")
                continue
            _say(f"{code}: subscribed")
    if failed:
        raise Fail(f"{len(failed)} of {len(approval_codes)} definitions were not subscribed",
                   "check each code in Feishu's approval admin, and that the app has the approval scopes")
