"""Run every benchmark with its defaults, print the results, write bench/results/latest.json.

    .venv/bin/python bench/run_all.py            # what `make bench` runs (about 8 minutes here)
    .venv/bin/python bench/run_all.py --subscribers 200 --events 50 --stream-quick   # a quick look
    .venv/bin/python bench/run_all.py --skip-fanout       # the steady-state stream benchmark only

Fan-out (bench/fanout.py): the bare Flask-SocketIO stack, CityPulse with connection state
recovery off and CityPulse with recovery on (subscribers reading offsets) side by side, the
events sent in `--rounds` bursts alternating between them. Machines are noisy, so the figures
that matter are the ratios measured in the same run: citypulse/bare, and
citypulse-recovery/citypulse (the cost of the offsets and the packet log; budget: < 15%).

Steady state (bench/stream.py, issue 12): evenly paced readings at fixed rates, one per POST and
in gateway batches of 20, to 1000 subscribers per mode (per-reading events, coalesced 250 ms
frames, the bare stack, and ingest alone); a slow-consumer run; server RSS per idle connection
(`--stream-memory-connections`, 5000 here to keep `make bench` near 8 minutes; `bench/stream.py
--only memory` tries 10,000).
"""
import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results", "latest.json")
REQUIREMENTS = os.path.join(BENCH, "requirements.txt")
MAKE_BENCH_MEMORY_CONNECTIONS = 5000  # keeps `make bench` near 8 minutes; 10,000 takes 3.5 minutes more


def ensure_requirements():
    """aiohttp is a benchmark-only dependency: install bench/requirements.txt when it is missing."""
    try:
        import aiohttp  # noqa: F401
        return
    except ImportError:
        pass
    print(f"aiohttp is missing: installing {os.path.relpath(REQUIREMENTS, ROOT)} into {sys.prefix} ...", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS])
    importlib.invalidate_caches()
    try:
        import aiohttp  # noqa: F401,F811
    except ImportError:
        sys.exit(f"Could not install aiohttp (pip exit {result.returncode}). Install it by hand:\n"
                 f"  {sys.executable} -m pip install -r {REQUIREMENTS}")


def versions():
    from importlib import metadata

    out = {}
    for name in ("eventlet", "Flask", "Flask-SocketIO", "python-socketio", "python-engineio", "aiohttp",
                 "mongomock-ng"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def median(values):
    return round(statistics.median(values), 3) if values else None


def run_fanout(args):
    import fanout

    opts = dict(fanout.DEFAULTS, subscribers=args.subscribers, events=args.events, rounds=args.rounds,
                batch=args.batch, procs=args.procs, client=args.client)
    print("== fan-out: CityPulse (recovery off, recovery on) vs the bare Flask-SocketIO stack ==", flush=True)
    report = fanout.run(opts, fanout.MODES, log=lambda msg: print(msg, flush=True))
    print()
    print(fanout.format_table(report), flush=True)
    report["ratio_by_round_median"] = median(report["ratio_by_round"])
    report["ratio_recovery_over_off_by_round_median"] = median(report["ratio_recovery_over_off_by_round"])
    return report


def run_stream(args):
    import stream

    opts = dict(stream.DEFAULTS)
    if args.stream_quick:
        opts.update(stream.QUICK)
    if args.stream_memory_connections:
        opts["memory_connections"] = args.stream_memory_connections
    elif not args.stream_quick:
        opts["memory_connections"] = MAKE_BENCH_MEMORY_CONNECTIONS
    if args.stream_only:
        opts["only"] = args.stream_only
    print("\n== steady state: paced readings, per-reading events vs coalesced frames vs the bare stack ==", flush=True)
    report = stream.run(opts, log=lambda msg: print(msg, flush=True))
    print()
    print(stream.format_report(report), flush=True)
    return report


def print_summary(report):
    by_mode = {r["mode"]: r for r in report["results"]}
    print("\n== summary ==")
    for mode in ("bare", "citypulse", "citypulse-recovery"):
        r = by_mode[mode]
        print(f"  {mode:<18} {r['deliveries_per_s']:>10,.0f} deliveries/s   "
              f"{r['server_cpu_us_per_delivery']:>5.1f} us of server CPU per delivery")
    print(f"  citypulse/bare: {report['ratio_citypulse_over_bare']:.2f} of the throughput "
          f"(median of bursts {report['ratio_by_round_median']:.2f}), "
          f"{report['server_cpu_ratio_citypulse_over_bare']:.2f}x the server CPU per delivery")
    ratio = report["ratio_recovery_over_off"]
    cost = 1 - ratio
    verdict = (f"recovery costs {100 * cost:.1f}% of deliveries/s" if cost > 0
               else "recovery measured no slower (the difference is noise)")
    print(f"  citypulse-recovery/citypulse: {ratio:.3f} of the throughput "
          f"(median of bursts {report['ratio_recovery_over_off_by_round_median']:.3f}), "
          f"{report['server_cpu_ratio_recovery_over_off']:.3f}x the server CPU per delivery: "
          f"{verdict}; budget < 15%: {'holds' if cost < 0.15 else 'EXCEEDED'}")
    other = max((r["other_cpu_pct"] or 0) for r in report["results"])
    if other >= 20:
        print(f"  note: other processes used {other:.0f}% of a core on average while measuring; "
              f"absolute figures are low, compare the ratios")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the CityPulse benchmarks and save bench/results/latest.json.")
    parser.add_argument("--rounds", type=int, default=5, help="bursts the events are sent in, alternating modes")
    parser.add_argument("-k", "--subscribers", type=int, default=1000)
    parser.add_argument("-m", "--events", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="events per HTTP request")
    parser.add_argument("--procs", type=int, default=1, help="subscriber processes")
    parser.add_argument("--client", choices=("raw", "socketio"), default="raw")
    parser.add_argument("--output", default=RESULTS, help="where to write the JSON results")
    parser.add_argument("--skip-fanout", action="store_true", help="skip the burst fan-out benchmark")
    parser.add_argument("--skip-stream", action="store_true", help="skip the steady-state stream benchmark")
    parser.add_argument("--stream-quick", action="store_true", help="bench/stream.py --quick (about 3.5 minutes)")
    parser.add_argument("--stream-only", help="parts of bench/stream.py: sweep,slow,memory (default all)")
    parser.add_argument("--stream-memory-connections", type=int,
                        help=f"idle subscribers for the RSS-per-connection figure (default "
                             f"{MAKE_BENCH_MEMORY_CONNECTIONS}; 3000 with --stream-quick; bench/stream.py's own "
                             f"default is 10000, about 3.5 minutes more here)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.subscribers, args.events) < 1 or not 1 <= args.batch <= 1000:
        parser.error("--rounds, --subscribers and --events must be positive; --batch 1..1000")

    ensure_requirements()
    sys.path.insert(0, BENCH)
    started = time.monotonic()
    load_before = os.getloadavg()
    fanout_report = stream_report = None
    try:
        if not args.skip_fanout:
            fanout_report = run_fanout(args)
    except RuntimeError as exc:
        print(f"\nfan-out benchmark failed: {exc}", file=sys.stderr)
        return 1
    try:
        if not args.skip_stream:
            stream_report = run_stream(args)
    except RuntimeError as exc:
        print(f"\nstream benchmark failed: {exc}", file=sys.stderr)
        return 1
    result = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "git_commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before]},
        "versions": versions(),
        "fanout": fanout_report,
        "stream": stream_report,
    }
    result["duration_s"] = round(time.monotonic() - started, 1)
    if fanout_report is not None:
        print_summary(result["fanout"])
    if stream_report is not None:
        print("\n== steady state (issue 12) ==")
        for line in stream_report["verdicts"]:
            print("  " + line)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    print(f"\nwrote {os.path.relpath(args.output, ROOT)} ({result['duration_s']:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
