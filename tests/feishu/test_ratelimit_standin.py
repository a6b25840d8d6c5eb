"""The limiter against the stand-in with its rate limits enforced: a 09:00 burst goes out with no refusals.

Scaled up for speed (the stand-in allows 250/s per app and 5/s per receiver; the limiter runs at 200/s
and 4/s): the shape of the problem is Feishu's, the figures fit a test run. The real-scale figure
(50/s, 1,000/min, 2,000 messages) is a benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import json
import time

from engine.feishu.client import FeishuClient
from engine.feishu.errors import RATE_LIMIT_CODES
from engine.feishu.ratelimit import RateLimiter
from engine.feishu.standin import FeishuStandIn, RateRule

RULES = (
    RateRule("im.message.send", 250, 1.0),
    RateRule("im.message.send", 20_000, 60.0),
    RateRule("im.message.send", 5, 1.0, per="receiver", code=230020, status=400),
)


async def test_burst_of_2000_sends_has_zero_rate_limit_failures() -> None:
    standin = FeishuStandIn(app_id="cli_burst", app_secret="burst-secret", enforce_rate_limits=True,
                            rate_rules=RULES)
    await standin.start()
    limiter = RateLimiter.for_feishu(messages_per_second=200, messages_per_second_per_chat=4,
                                     messages_per_minute=16_000)
    client = FeishuClient(standin.base_url, "cli_burst", "burst-secret", timeout=10.0, limiter=limiter)
    receivers = [f"ou_burst_{i:03d}" for i in range(400)]
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(
            client.send_message("open_id", receivers[i % len(receivers)], "text",
                                json.dumps({"text": f"reminder {i}"}), f"burst-{i}")
            for i in range(2000)), return_exceptions=True)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
        await standin.stop()

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    refused = [c for c in standin.calls if c.code in RATE_LIMIT_CODES]
    assert refused == []
    assert len(standin.messages()) == 2000
    # 2,000 at 200/s cannot take less than ~10 s; it should not take much more either
    print(f"2000 sends in {elapsed:.1f}s ({2000 / elapsed:.0f}/s)")
    assert 9.0 <= elapsed < 30.0
