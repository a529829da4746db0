"""``python -m loadtest [--requests N] [--concurrency C] [--fault-rate R] [--seed S]
[--profile mixed|pumping|all|scale-out] [--instances N] [--sends S]``.

``mixed`` is the request mix with Twilio faults; ``pumping`` SMS pumping against
the rate limits (``loadtest.pumping``); ``all`` (the default) runs both.
``scale-out`` runs ``--instances`` hosts behind one address over one store and
one sandbox, ``--sends`` sends with Idempotency-Keys under tight limits
(``loadtest.scale_out``); ``make load PROFILE=scale-out N=4``.
Exits 1 when any check fails, so ``make load`` fails with it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.pumping import run_pumping
from loadtest.runner import LoadConfig, run_load
from loadtest.scale_out import ScaleOutConfig, run_scale_out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load, print the report; 0 only if every check passed."""
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(prog="python -m loadtest",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--concurrency", type=int,
                        help=f"requests in flight (default {defaults.concurrency}; scale-out "
                        f"{ScaleOutConfig().concurrency})")
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate,
                        help="share of Twilio requests the sandbox fails (0..1)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--app-dir", type=Path, default=defaults.app_dir,
                        help="function app to load (default: this project)")
    parser.add_argument("--profile", choices=("mixed", "pumping", "all", "scale-out"),
                        default="all",
                        help="the request mix with faults, SMS pumping against the limits, "
                             "both (default), or several instances behind one address")
    scaled = ScaleOutConfig()
    parser.add_argument("--instances", type=int, default=scaled.instances,
                        help=f"scale-out: host processes (default {scaled.instances})")
    parser.add_argument("--sends", type=int, default=scaled.sends,
                        help=f"scale-out: sends, each with its own key (default {scaled.sends})")
    args = parser.parse_args(argv)
    if args.profile == "scale-out":
        args.concurrency = args.concurrency or ScaleOutConfig().concurrency
        if not 1 <= args.instances <= 16 or not 20 <= args.sends <= 20_000:
            parser.error("--instances must be 1..16 and --sends 20..20000")
        scale = run_scale_out(ScaleOutConfig(
            instances=args.instances, sends=args.sends, seed=args.seed,
            concurrency=args.concurrency))
        print(scale.render(), flush=True)
        return 0 if scale.ok else 1
    args.concurrency = args.concurrency or defaults.concurrency
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 1000:
        parser.error("--requests must be 1..100000 and --concurrency 1..1000")
    if not 0.0 <= args.fault_rate < 1.0:
        parser.error("--fault-rate must be within 0..1")
    ok = True
    if args.profile in ("mixed", "all"):
        report = run_load(LoadConfig(requests=args.requests, concurrency=args.concurrency,
                                     fault_rate=args.fault_rate, seed=args.seed,
                                     app_dir=args.app_dir.resolve()))
        print(report.render(), flush=True)
        ok = report.ok
    if args.profile in ("pumping", "all"):
        pumping = run_pumping()
        print(pumping.render(), flush=True)
        ok = ok and pumping.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
