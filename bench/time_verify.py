"""Microseconds per `verify_message` of one RSA-2048 signed reply: the median of three runs of 2,000 calls.

Run: python bench/time_verify.py. The cost per message of what bench/bench_verify.py reports as a rate,
steadier for comparing two versions of the verifier.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from bench_verify import signed_reply  # noqa: E402

from voting.smime.verify import verify_message  # noqa: E402

CALLS = 2000
RUNS = 3


def microseconds_per_message() -> float:
    reply = signed_reply()
    now = datetime.now(UTC)
    assert verify_message(reply.raw, reply.trust, now).valid
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(CALLS):
            verify_message(reply.raw, reply.trust, now)
        runs.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(runs)


def main() -> int:
    print(f"verify_message: {microseconds_per_message():.1f} µs per message (median of {RUNS} x {CALLS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
