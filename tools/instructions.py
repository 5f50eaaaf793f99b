#!/usr/bin/env python3
"""The instructions a request costs the gateway and the protocol's floor, counted by callgrind.

    instructions.py IMAGE_DIR FLOOR OUT.json [--requests N]

Throughput on a shared VM drifts by tens of percent within minutes; the
number of instructions a process executes for a request does not (callgrind
counts them, whatever else the machine does: the same build gives the same
count to within a fraction of a percent). So this is the measure to compare
two builds of the gateway with, or the gateway with the floor
(e2e/src/bin/floor.rs), which drives the same function bootstraps through the
same Runtime API and does nothing else.

Each server runs under `valgrind --tool=callgrind` (the functions it starts
run natively); one run serves only a warm-up, another the warm-up and then N
requests on one kept-alive connection, and the difference over N is the
count a request. Only user-space instructions count: the kernel's share (the
loopback TCP writes and reads, the switches between processes, the same
syscalls for both servers) is not in it, which is why `make bench`'s CPU
times are still the measure of speed.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMETERS = "ThrottlingRateLimit=1000000 ThrottlingBurstLimit=1000000"
WARMUP = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, path: str, n: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        if path == "/ping":
            connection.request("GET", path, headers={"user-agent": "instructions"})
        else:
            connection.request("POST", path, body=b"{}",
                               headers={"content-type": "application/json", "user-agent": "instructions"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}")


def run(command: list[str], path: str, n: int, workdir: Path) -> int:
    """Instructions of `command`'s own process over a warm-up and `n` requests to `path`."""
    out = workdir / "callgrind.out"
    out.unlink(missing_ok=True)
    port = free_port()
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + [
        a.replace("{port}", str(port)).replace("{admin}", str(free_port())) for a in command]
    env = dict(os.environ, KF_WORKERS="1")  # one thread, as on one CPU
    with open(workdir / "server.log", "w") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                load(port, "/ping", 1)
                load(port, "/api/v1/hello", 1)
                break
            except (OSError, http.client.HTTPException, SystemExit):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"{command[0]} did not start: {(workdir / 'server.log').read_text()}")
                time.sleep(0.2)
        load(port, "/ping", WARMUP)
        load(port, "/api/v1/hello", WARMUP)
        if n:
            load(port, path, n)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def main() -> None:
    args = sys.argv[1:]
    n = 2000
    if "--requests" in args:
        i = args.index("--requests")
        n = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3:
        raise SystemExit(__doc__)
    image, floor, out = Path(args[0]).resolve(), Path(args[1]).resolve(), Path(args[2])
    common = ["--listen", "127.0.0.1:{port}", "--functions-dir", str(image / "functions"),
              "--template", str(image / "template.yaml"), "--parameter-overrides", PARAMETERS]
    servers = {
        "gateway": [str(image / "gateway"), "--admin-listen", "127.0.0.1:{admin}"] + common,
        "floor": [str(floor)] + common,
    }
    result = {"requests": n, "warmup": WARMUP, "servers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, command in servers.items():
            base = run(command, "/ping", 0, workdir)
            counts = {}
            for route, path in (("ping", "/ping"), ("hello", "/api/v1/hello")):
                counts[route] = round((run(command, path, n, workdir) - base) / n)
            print(f"{name}: {counts['ping']:,} instructions a /ping, {counts['hello']:,} a hello", file=sys.stderr)
            result["servers"][name] = counts
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
