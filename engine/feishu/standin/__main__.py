"""``python -m engine.feishu.standin --port 9123 --state standin.json``: the stand-in as its own process."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .core import FeishuStandIn
from .state import sample_state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.feishu.standin",
                                     description="A local Feishu Open Platform stand-in on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    parser.add_argument("--state", type=Path, help="JSON state file: loaded at start, saved at exit")
    parser.add_argument("--seed-sample", action="store_true",
                        help="when the state file does not exist yet, start from the sample users and tables")
    parser.add_argument("--app-id", default="cli_standin")
    parser.add_argument("--app-secret", default="standin-secret")
    parser.add_argument("--tenant-key", default="t_standin")
    parser.add_argument("--encrypt-key", default=None)
    parser.add_argument("--verification-token", default="standin-token")
    parser.add_argument("--event-url", default=None, help="default target of POST /_standin/deliver")
    parser.add_argument("--rate-limits", action="store_true", help="enforce Feishu's message rate limits")
    parser.add_argument("--strict-ids", action="store_true", help="refuse unknown chats/users like Feishu")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.state and args.seed_sample and not args.state.exists():
        args.state.parent.mkdir(parents=True, exist_ok=True)
        args.state.write_text(json.dumps(sample_state(), ensure_ascii=False, indent=1), encoding="utf-8")
    standin = FeishuStandIn(state_file=args.state, app_id=args.app_id, app_secret=args.app_secret,
                            tenant_key=args.tenant_key, encrypt_key=args.encrypt_key,
                            verification_token=args.verification_token, event_url=args.event_url,
                            enforce_rate_limits=args.rate_limits, strict_ids=args.strict_ids)
    standin.serve_forever(args.host, args.port, announce=lambda url: print(
        f"Feishu stand-in on {url}  (outbox: {url}/_standin/)", flush=True))


if __name__ == "__main__":
    main()
