"""Command-line front of the kit's open-loop load generator (mlkit.bench.loadgen, the one `mlkit bench`
uses): requests leave on a schedule whether or not earlier ones were answered, and latency counts
from the scheduled send time.

    python openloop.py --url http://127.0.0.1:8080/predict --body payload.json --rate 500 --seconds 10 [--poisson]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from mlkit.bench import loadgen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True, help="file with the JSON request body")
    p.add_argument("--rate", type=float, required=True, help="requests per second to offer")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of a constant rate")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections to spread requests over")
    args = p.parse_args()
    with open(args.body, "rb") as f:
        body = f.read()
    result = asyncio.run(loadgen.run(args.url, body, args.rate, args.seconds, poisson=args.poisson, connections=args.connections))
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
