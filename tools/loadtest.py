#!/usr/bin/env python3
"""`make loadtest`: Locust, headless and bounded in time, against the local
container stack (or --host), then charts and a summary.

Starts the gateway from the staged image (`make stage`) on a free loopback
port, waits for /readyz, runs locustfile.py with its ramp to 250 users,
stops the gateway with SIGTERM, and writes into --out:
    locust_stats.csv, locust_stats_history.csv, locust_failures.csv  (Locust's CSV)
    report.html                                                       (Locust's report)
    summary.json                                                      (the numbers)
and into --charts: requests.png, latency.png, users.png.
Exits with Locust's status: non-zero if any request failed.
"""

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the gateway exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url} not ready after {timeout} s")


def start_stack(image: Path, rie: str, out: Path) -> tuple[subprocess.Popen, str]:
    if not (image / "gateway").exists():
        sys.exit(f"no {image / 'gateway'}: run `make stage`")
    port = free_port()
    log = open(out / "gateway.log", "wb")
    gateway = subprocess.Popen(
        [
            str(image / "gateway"),
            "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{free_port()}",
            "--functions-dir", str(image / "functions"),
            "--template", str(image / "template.yaml"),
            "--rie", rie,
        ],
        stdout=log,
        stderr=log,
    )
    host = f"http://127.0.0.1:{port}"
    wait_ready(f"{host}/readyz", 30, gateway)
    return gateway, host


def aggregated_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    start = int(rows[0]["Timestamp"]) if rows else 0
    history = []
    for r in rows:
        def num(key):
            value = r.get(key, "")
            return float(value) if value not in ("", "N/A") else None
        history.append({
            "t": int(r["Timestamp"]) - start,
            "users": int(float(r["User Count"])),
            "rps": num("Requests/s") or 0.0,
            "failures_per_s": num("Failures/s") or 0.0,
            "p50_ms": num("50%"),
            "p95_ms": num("95%"),
            "p99_ms": num("99%"),
        })
    return history


def summary(out: Path) -> dict:
    with open(out / "locust_stats.csv", newline="") as f:
        stats = list(csv.DictReader(f))
    by_name = {}
    for row in stats:
        by_name[row["Name"]] = {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": round(float(row["Requests/s"]), 1),
            "p50_ms": float(row["50%"]) if row["50%"] != "N/A" else None,
            "p95_ms": float(row["95%"]) if row["95%"] != "N/A" else None,
            "p99_ms": float(row["99%"]) if row["99%"] != "N/A" else None,
        }
    history = aggregated_history(out / "locust_stats_history.csv")
    return {
        "by_request": by_name,
        "peak_rps": round(max((h["rps"] for h in history), default=0.0), 1),
        "peak_users": max((h["users"] for h in history), default=0),
        "seconds": history[-1]["t"] if history else 0,
        "history": history,
    }


def charts(history: list[dict], directory: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    t = [h["t"] for h in history]

    def save(name, ylabel, series):
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
        for label, values, color in series:
            points = [(x, y) for x, y in zip(t, values) if y is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, color=color)
        ax.set_xlabel("seconds")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {ylabel}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(directory / name)
        plt.close(fig)

    save("requests.png", "requests/s", [
        ("requests/s", [h["rps"] for h in history], "tab:green"),
        ("failures/s", [h["failures_per_s"] for h in history], "tab:red"),
    ])
    save("latency.png", "latency (ms)", [
        ("p50", [h["p50_ms"] for h in history], "tab:blue"),
        ("p95", [h["p95_ms"] for h in history], "tab:orange"),
        ("p99", [h["p99_ms"] for h in history], "tab:red"),
    ])
    save("users.png", "users", [("users", [h["users"] for h in history], "tab:purple")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", help="test this deployment instead of starting the local stack")
    parser.add_argument("--image", type=Path, default=ROOT / "target/image/opt/kf-api")
    parser.add_argument("--rie", default=os.environ.get("AWS_LAMBDA_RIE", "aws-lambda-rie"))
    parser.add_argument("--users", type=int, default=250)
    parser.add_argument("--ramp", type=float, default=60)
    parser.add_argument("--hold", type=float, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "target/loadtest")
    parser.add_argument("--charts", type=Path, help="where to write the PNG charts")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    gateway, host = (None, args.host) if args.host else start_stack(args.image, args.rie, args.out)
    env = dict(os.environ, KF_USERS=str(args.users), KF_RAMP_SECONDS=str(args.ramp),
               KF_HOLD_SECONDS=str(args.hold), KF_SHAPE="on")
    locust = [
        str(Path(sys.executable).parent / "locust"),
        "-f", str(ROOT / "locustfile.py"),
        "--headless", "--host", host,
        "--csv", str(args.out / "locust"), "--csv-full-history",
        "--html", str(args.out / "report.html"),
        "--only-summary", "--loglevel", "WARNING",
    ]
    try:
        status = subprocess.run(locust, env=env, cwd=ROOT, check=False).returncode
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gateway.kill()
    result = summary(args.out)
    result.update({"host": "local stack (make stage)" if gateway is not None else host,
                   "users": args.users, "ramp_seconds": args.ramp, "hold_seconds": args.hold,
                   "locust_exit": status,
                   "gateway_exit": gateway.returncode if gateway is not None else None})
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    if args.charts:
        charts(result["history"], args.charts, f"kf-api, {args.users} users")
    total = result["by_request"].get("Aggregated", {})
    print(f"loadtest: {total.get('requests', 0)} requests, {total.get('failures', 0)} failed, "
          f"peak {result['peak_rps']} req/s at up to {result['peak_users']} users")
    return status


if __name__ == "__main__":
    sys.exit(main())
