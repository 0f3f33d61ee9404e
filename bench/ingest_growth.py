"""Diagnostic: server CPU per ingest request as stored readings accumulate (no subscribers).

    .venv/bin/python bench/ingest_growth.py                 # 3000 readings in POSTs of 100
    .venv/bin/python bench/ingest_growth.py --readings 6000 --every 5

Starts `python run.py` like bench/fanout.py does (embedded engine: MONGO_URI and REDIS_URL are
not passed on), then POSTs batches of traffic readings to /api/traffic/data and prints, every
few batches, the wall time and the server's CPU time for that one request. On a constant-cost
ingest path the numbers stay flat; when they grow with the number of stored readings, something
on the path is linear in the collection size (see docs/benchmarks.md).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fanout  # noqa: E402
import requests  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=3000, help="total readings to ingest")
    parser.add_argument("--batch", type=int, default=100, help="readings per POST (at most 1000)")
    parser.add_argument("--every", type=int, default=3, help="print every Nth request")
    parser.add_argument("--sensors", type=int, default=1000, help="distinct sensor ids cycled through")
    parser.add_argument("--json", help="also write the samples to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 1000 or args.readings < args.batch:
        parser.error("need 1 <= --batch <= 1000 and --readings >= --batch")

    server = fanout.Server("citypulse", 10)
    samples = []
    try:
        token = fanout.login(server.url)
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}"}
        requests_total = args.readings // args.batch
        print(f"{'stored before':>13}  {'wall ms':>8}  {'server CPU ms':>13}  {'CPU ms/reading':>14}")
        for index in range(requests_total):
            stored = index * args.batch
            batch = [{"sensor_id": f"BENCH-{(stored + i) % args.sensors:04d}", "vehicle_count": 10,
                      "average_speed": 30.0, "congestion_level": 20.0} for i in range(args.batch)]
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            response = session.post(server.url + "/api/traffic/data", json=batch, headers=headers, timeout=300)
            wall, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
            if response.status_code != 201:
                raise RuntimeError(f"/api/traffic/data answered {response.status_code}: {response.text[:300]}")
            samples.append({"stored_before": stored, "wall_ms": round(wall * 1000, 1),
                            "server_cpu_ms": round(cpu * 1000)})
            if index % args.every == 0 or index == requests_total - 1:
                print(f"{stored:>13}  {wall * 1000:>8.0f}  {cpu * 1000:>13.0f}  {cpu * 1000 / args.batch:>14.2f}",
                      flush=True)
    finally:
        server.stop()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"batch": args.batch, "sensors": args.sensors, "samples": samples}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
