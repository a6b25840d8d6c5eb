"""A 2,000-message burst through the rate limiter against Feishu's published limits.

2,000 text messages to 400 users (5 each), all submitted at once (``asyncio.gather``, at most 64 in flight
at the client), through :class:`~engine.feishu.client.FeishuClient` with the engine's default limiter
(``RateLimiter.for_feishu()``: Feishu's own 50/s, 1,000/min, 5/s per receiver, each call counted until its
answer is back), against the Feishu stand-in enforcing those limits (answered with 99991400 / 230020
exactly as Feishu does). The time the limits force is computed in the same run by scheduling every send
at the earliest instant all windows allow (for 2,000: 1,000 in the first 20 s, the next 1,000 from 60 s,
the last at 79 s); the run prints its ratio to it. Progress is printed every 250 deliveries.
``BENCH_BURST_MESSAGES`` runs a smaller burst (the same 5 messages per user).

Baseline, same run and same stand-in: a 200-message burst with the same shape (40 users, 5 each) through
a client whose limiter has huge limits, counting what Feishu refuses. It runs twice: with the engine's
reactive back-off still on (a refusal's ``x-ogw-ratelimit-reset`` pauses the client, as it would
without a proactive limiter), and with no pacing at all. Each burst uses its own app on the stand-in
(Feishu's quotas are per app), so one burst's minute window never counts against another.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.feishu.client import FeishuClient
from engine.feishu.errors import FeishuError
from engine.feishu.ratelimit import MESSAGE_SEND, ApiLimit, Rate, RateLimiter
from engine.feishu.standin import FeishuStandIn
from engine.feishu.standin.faults import MESSAGE_RATE_LIMITED, RATE_LIMITED

MESSAGES = int(os.environ.get("BENCH_BURST_MESSAGES", "2000"))
RECEIVERS = max(1, MESSAGES // 5)
BASELINE_MESSAGES = 200
IN_FLIGHT = 64
PROGRESS_EVERY = 250
DEADLINE_S = 300.0  # the limited burst needs ~80 s; anything not sent by then is cancelled
BASELINE_DEADLINE_S = 60.0
SEND_PATH = "/open-apis/im/v1/messages"

MAIN_APP = "cli_burst_limited"
HUGE_APP = "cli_burst_huge_limits"
NONE_APP = "cli_burst_no_pacing"
SECRET = "burst-secret"


class UnpacedLimiter(RateLimiter):
    """Huge limits, and Feishu's "wait N s" answers ignored: no pacing of any kind."""

    def penalize(self, api: str, seconds: float, key: str | None = None, limit: int | None = None) -> None:
        return None


def huge_limits(cls: type[RateLimiter] = RateLimiter) -> RateLimiter:
    huge = ApiLimit(app=(Rate(1_000_000),))
    return cls({MESSAGE_SEND: huge}, default=huge)


@dataclass
class BurstResult:
    app_id: str
    messages: int
    elapsed: float
    delivered: int = 0
    rate_limited: int = 0
    other_failures: dict[str, int] = field(default_factory=dict)
    unsent: int = 0


async def burst(client: FeishuClient, app_id: str, messages: int, receivers: Sequence[str], deadline_s: float,
                progress: Callable[[int, float], None] | None = None) -> BurstResult:
    """Submit every send at once (``IN_FLIGHT`` at a time past the semaphore) and classify the outcomes."""
    semaphore = asyncio.Semaphore(IN_FLIGHT)
    run = uuid.uuid4().hex[:8]
    result = BurstResult(app_id, messages, 0.0)
    began = time.perf_counter()

    async def send(i: int) -> None:
        async with semaphore:
            try:
                await client.send_message("open_id", receivers[i % len(receivers)], "text",
                                          json.dumps({"text": f"reminder {i}"}), f"{app_id}-{run}-{i}")
            except FeishuError as error:
                if error.is_rate_limit:
                    result.rate_limited += 1
                else:
                    name = f"{error.code}"
                    result.other_failures[name] = result.other_failures.get(name, 0) + 1
                return
            except Exception as error:  # reported, never hidden
                name = type(error).__name__
                result.other_failures[name] = result.other_failures.get(name, 0) + 1
                return
            result.delivered += 1
            if progress is not None and result.delivered % PROGRESS_EVERY == 0:
                progress(result.delivered, time.perf_counter() - began)

    tasks = [asyncio.ensure_future(send(i)) for i in range(messages)]
    _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    result.unsent = len(pending)
    result.elapsed = time.perf_counter() - began
    return result


def forced_time(messages: int, receivers: int, per_second: int = 50, per_minute: int = 1_000,
                per_receiver: int = 5) -> float:
    """When the last of ``messages`` (round-robin over ``receivers``) may be sent under Feishu's limits.

    Each send goes at the earliest instant every window allows: at most ``per_second`` in any 1 s and
    ``per_minute`` in any 60 s for the app, ``per_receiver`` in any 1 s to one receiver.
    """
    times: list[float] = []
    last: dict[int, list[float]] = defaultdict(list)
    for i in range(messages):
        at = times[-1] if times else 0.0
        if len(times) >= per_second:
            at = max(at, times[-per_second] + 1.0)
        if len(times) >= per_minute:
            at = max(at, times[-per_minute] + 60.0)
        own = last[i % receivers]
        if len(own) >= per_receiver:
            at = max(at, own[-per_receiver] + 1.0)
        times.append(at)
        own.append(at)
    return times[-1] if times else 0.0


def peak(times: Sequence[float], window: float) -> int:
    """The most timestamps in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)


@dataclass
class Observed:
    accepted: list[float]
    refused_app: int
    refused_receiver: int
    per_receiver: dict[str, list[float]]

    def receiver_peak(self) -> int:
        return max((peak(times, 1.0) for times in self.per_receiver.values()), default=0)


def observed(standin: FeishuStandIn, app_id: str) -> Observed:
    """What the stand-in recorded for one app's sends: arrival times of accepted ones, refusals by code."""
    accepted: list[float] = []
    per_receiver: dict[str, list[float]] = defaultdict(list)
    refused_app = refused_receiver = 0
    for call in list(standin.calls):
        if call.app_id != app_id or call.method != "POST" or call.path != SEND_PATH:
            continue
        if call.code == RATE_LIMITED:
            refused_app += 1
        elif call.code == MESSAGE_RATE_LIMITED:
            refused_receiver += 1
        elif call.code == 0:
            accepted.append(call.at)
            if isinstance(call.body, dict):
                per_receiver[str(call.body.get("receive_id"))].append(call.at)
    return Observed(accepted, refused_app, refused_receiver, per_receiver)


def report(label: str, result: BurstResult, seen: Observed) -> None:
    refused = seen.refused_app + seen.refused_receiver
    other = sum(result.other_failures.values())
    print(f"  {label}")
    print(f"    {result.messages} sent: {result.delivered} delivered, {result.rate_limited} failed rate-limited "
          f"(Feishu refused {refused}: {seen.refused_app} x 99991400 per app, "
          f"{seen.refused_receiver} x 230020 per user), {other} other failures"
          + (f" {result.other_failures}" if other else "")
          + (f", {result.unsent} not sent by the {DEADLINE_S:.0f} s deadline" if result.unsent else ""))
    print(f"    {result.elapsed:7.1f} s total, {result.delivered / result.elapsed:6.1f} delivered/s; peak accepted "
          f"sends at the stand-in: {peak(seen.accepted, 1.0)} in any 1 s, {peak(seen.accepted, 60.0)} in any 60 s, "
          f"{seen.receiver_peak()} to one user in any 1 s  (Feishu: 50, 1,000, 5)")


async def bench() -> None:
    standin = FeishuStandIn(app_id=MAIN_APP, app_secret=SECRET, enforce_rate_limits=True)
    for app_id in (HUGE_APP, NONE_APP):
        standin.add_app(app_id, SECRET, "t_burst")
    await standin.start(in_thread=True)  # its own loop and thread: the client's 2,000 tasks do not delay it
    receivers = [f"ou_burst_{i:03d}" for i in range(RECEIVERS)]
    clients: list[FeishuClient] = []
    try:
        limited = FeishuClient(standin.base_url, MAIN_APP, SECRET, limiter=RateLimiter.for_feishu())
        clients.append(limited)
        await limited.tenant_token()  # the token fetch is not part of the burst
        forced = forced_time(MESSAGES, RECEIVERS)
        print(f"  {MESSAGES} messages to {RECEIVERS} users (5 each), all at once ({IN_FLIGHT} in flight at the "
              "client), limiter RateLimiter.for_feishu() (50/s, 1,000/min, 5/s per user) vs the stand-in "
              f"enforcing the same; Feishu's limits force {forced:.2f} s", flush=True)

        def progress(delivered: int, elapsed: float) -> None:
            print(f"    {delivered:5d} delivered at {elapsed:6.1f} s", flush=True)

        main_result = await burst(limited, MAIN_APP, MESSAGES, receivers, DEADLINE_S, progress)
        main_seen = observed(standin, MAIN_APP)
        report("with the engine's limiter", main_result, main_seen)
        print(f"    {main_result.elapsed:.1f} s vs {forced:.2f} s forced by Feishu's limits: "
              f"{main_result.elapsed / forced if forced else float('inf'):.3f}x", flush=True)

        baselines = []
        for app_id, limiter, label in (
            (HUGE_APP, huge_limits(), "baseline: limiter with huge limits (Feishu's reset hints still obeyed)"),
            (NONE_APP, huge_limits(UnpacedLimiter), "baseline: no pacing at all (reset hints ignored too)"),
        ):
            client = FeishuClient(standin.base_url, app_id, SECRET, limiter=limiter)
            clients.append(client)
            await client.tenant_token()
            result = await burst(client, app_id, BASELINE_MESSAGES, receivers[:BASELINE_MESSAGES // 5],
                                 BASELINE_DEADLINE_S)
            seen = observed(standin, app_id)
            report(f"{label}, {BASELINE_MESSAGES} messages to {BASELINE_MESSAGES // 5} users", result, seen)
            baselines.append((result, seen))
    finally:
        for client in clients:
            await client.aclose()
        await standin.stop()

    main_refused = main_seen.refused_app + main_seen.refused_receiver
    main_delivered = main_result.delivered / MESSAGES
    for (result, seen), name in zip(baselines, ("huge limits", "no pacing"), strict=True):
        refused = seen.refused_app + seen.refused_receiver
        delivered = result.delivered / BASELINE_MESSAGES
        print(f"  limiter vs {name}: refused by Feishu {main_refused / MESSAGES:.1%} vs "
              f"{refused / BASELINE_MESSAGES:.1%} of sends; delivered {main_delivered:.1%} vs {delivered:.1%} "
              f"({main_delivered / delivered if delivered else float('inf'):.2f}x)")

def main() -> None:
    asyncio.run(bench())
