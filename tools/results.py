#!/usr/bin/env python3
"""The one results file, and the README's and docs' tables made from it.

    results.py record compute FILE    # divan's output of `cargo bench -p shared --bench factor`
    results.py record stack FILE      # stack-bench's JSON
    results.py record loadtest FILE   # tools/loadtest.py's summary.json
    results.py record node FILE       # tools/k8s/node-test.sh's numbers
    results.py record hpa FILE        # tools/k8s/hpa.py's settled counts
    results.py record instructions FILE  # tools/instructions.py's callgrind counts
    results.py record reliability DIR # make e2e's attack tests (target/reliability/*.json)
    results.py render [FILE.md]       # rewrite the generated tables (default: README.md and docs/*.md)
    results.py cost [PNG]             # chart cost per hour against request rate (matplotlib)

`make bench` and `make loadtest` call it; only `cost` needs matplotlib (`make
bench` runs it with the load test's venv), the rest runs on a plain python3.
Each section of results/results.json keeps the machine, date and commit it
was measured on; the tables between `<!-- results:NAME -->` and
`<!-- /results:NAME -->` in the README and docs/ are rewritten from it, so
they state no number that a command did not produce (the cost table also uses the dated list
prices written below, each with its page).
"""

import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "results.json"


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem_kb / 1048576),
            "os": sys.platform}


def provenance() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    # Changes to the results themselves (this file, the README and docs'
    # tables, the charts) do not make the measured code differ from the commit.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!README.md", ":!results", ":!docs"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "commit": commit + ("+changes" if dirty else "")}


UNITS = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def parse_divan(text: str) -> dict:
    """divan's tree: `├─ name  fastest │ slowest │ median │ mean │ samples │ iters`."""
    cases, parent = {}, None
    for line in text.splitlines():
        m = re.match(r"^([│ ]*)[├╰]─ (\S+)\s*(.*)$", line)
        if not m:
            continue
        depth, name, rest = len(m.group(1)) // 3, m.group(2), m.group(3)
        cells = [c.strip() for c in rest.split("│")]
        if depth == 0:
            parent = name
        if len(cells) < 4 or not cells[0]:
            continue  # a group heading
        def micros(cell):
            value, unit = cell.split()
            return round(float(value) * UNITS[unit], 4)
        key = name if depth == 0 else f"{parent}/{name}"
        cases[key] = {"fastest_us": micros(cells[0]), "slowest_us": micros(cells[1]),
                      "median_us": micros(cells[2]), "mean_us": micros(cells[3]),
                      "samples": int(cells[4]) if len(cells) > 4 and cells[4] else None}
    if not cases:
        sys.exit("no divan results found")
    return cases


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def record(kind: str, path: str) -> None:
    data = load()
    if kind == "reliability":
        # make e2e's attack tests, one file each (target/reliability/*.json).
        section = {f.stem: json.loads(f.read_text()) for f in sorted(Path(path).glob("*.json"))}
        if not section:
            sys.exit(f"no figures in {path}")
        for key, value in provenance().items():
            section.setdefault(key, value)
        data[kind] = section
        RESULTS.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print(f"recorded {kind} in {RESULTS.relative_to(ROOT)}")
        return
    text = Path(path).read_text()
    if kind == "compute":
        section = {"cases": parse_divan(text)}
    elif kind == "stack":
        section = json.loads(text)  # stack-bench records its own machine, date and commit
    elif kind == "loadtest":
        section = json.loads(text)
        section.pop("history", None)
    elif kind == "node":
        section = json.loads(text)  # tools/k8s/node-test.sh's numbers
    elif kind == "hpa":
        section = json.loads(text)  # tools/k8s/hpa.py's settled counts
    elif kind == "instructions":
        section = json.loads(text)  # tools/instructions.py's callgrind counts
    else:
        sys.exit(f"unknown kind {kind}")
    for key, value in provenance().items():
        section.setdefault(key, value)
    data[kind] = section
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"recorded {kind} in {RESULTS.relative_to(ROOT)}")


def fmt_us(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    if us >= 10:
        return f"{us:.0f} µs"
    return f"{us:.2f} µs"


def stamp(section: dict) -> str:
    m = section["machine"]
    return (f"Measured on {m['cpus']}-CPU {m['cpu'] or 'unknown CPU'}, {m['memory_gib']} GiB, "
            f"{section['date']}, commit {section['commit']}.")


COMPUTE_ROWS = [
    ("trial_default_range", "`trial`, random n from the default range"),
    ("rho_default_range", "`rho`, the same inputs"),
    ("rho_random_u64", "`rho`, uniformly random 64-bit n"),
    ("rho_hard/largest_u64_prime", "`rho`, 2^64 - 59 (largest 64-bit prime)"),
    ("rho_hard/u64_max", "`rho`, 2^64 - 1 (seven prime factors)"),
    ("rho_hard/semiprime_m31_p32", "`rho`, (2^31 - 1) x 4294967291"),
    ("rho_hard/semiprime_p32_q32", "`rho`, 4294967291 x 4294967279"),
    ("rho_hard/square_p32", "`rho`, 4294967291^2"),
    ("trial_prime_at_bound", "`trial`, 999999999999989 (largest prime within its bound)"),
]


def render_compute(c: dict) -> str:
    lines = ["| Case | Median | Mean | Slowest |", "|---|---|---|---|"]
    for key, label in COMPUTE_ROWS:
        case = c["cases"].get(key)
        if case:
            lines.append(f"| {label} | {fmt_us(case['median_us'])} | **{fmt_us(case['mean_us'])}** "
                         f"| {fmt_us(case['slowest_us'])} |")
    return "\n".join(lines + ["", stamp(c)])


PEERS = (("nginx", "nginx, the same `/ping` bytes (the HTTP ceiling)"),
         ("floor", "the protocol's floor: an HTTP front and the Runtime API, nothing else"),
         ("builtin", "**this stack, `builtin`** (the default)"),
         ("rie", "this stack, `rie` (through the AWS RIE)"),
         ("original", "the Python original's equivalent (FastAPI, uvicorn, one worker)"))


def peer_section(s: dict, name: str) -> dict | None:
    return s.get("nginx_ping") and {"ping": s["nginx_ping"]} if name == "nginx" else s.get(name)


def spread(run: dict, key: str = "rps", fmt: str = "{:,.0f}") -> str:
    low, high = (run.get("spread") or {}).get(key, [None, None])
    if low is None or low == high:
        return ""
    return f" ({fmt.format(low)} to {fmt.format(high)})"


def cpu_cell(run: dict | None) -> str:
    if not run:
        return "-"
    cpu = run.get("cpu_us_per_request", {})
    ranges = (run.get("spread") or {}).get("cpu_us_per_request", {})
    parts = []
    for role in ("gateway", "front", "rie", "function", "server"):
        if role in cpu:
            low, high = ranges.get(role, [cpu[role], cpu[role]])
            parts.append(f"{role} {cpu[role]:.0f}" + (f" ({low:.0f}-{high:.0f})" if low != high else ""))
    return ", ".join(parts)


def ratio(s: dict, mode: str, route: str, peer: str) -> dict | None:
    return ((s.get("ratios") or {}).get(mode) or {}).get(route, {}).get(peer)


def fmt_ratio(r: dict | None, as_share: bool) -> str:
    if not r:
        return "-"
    f = (lambda x: f"{x:.0%}") if as_share else (lambda x: f"{x:,.1f}x")
    return f"**{f(r['median'])}** ({f(r['min'])} to {f(r['max'])})"


def render_peers(s: dict) -> str:
    lines = ["| Server, one run, one CPU | `GET /ping` req/s | `POST /api/v1/hello` req/s "
             "| CPU per `/ping`, µs | CPU per `hello`, µs |", "|---|---|---|---|---|"]
    for name, label in PEERS:
        section = peer_section(s, name)
        if not section:
            why = (s.get("missing") or {}).get(name)
            if why:
                lines.append(f"| {label} | not measured: {why} | | | |")
            continue
        ping, hello = section.get("ping"), section.get("hello")
        cell = lambda r: f"{r['rps']:,.0f}{spread(r)}" if r else "-"
        lines.append(f"| {label} | {cell(ping)} | {cell(hello)} | {cpu_cell(ping)} | {cpu_cell(hello)} |")
    lines += ["", "Each throughput is the median of the trials, with their range; the CPU time of each "
              "process per request (user + system, from `/proc`) is the median run's, with the trials' range.",
              "", "The stack against its peers, each ratio taken within one trial (the median of the "
              "trials, with their range):", "",
              "| `builtin` against | `GET /ping` | `POST /api/v1/hello` | Target |", "|---|---|---|---|"]
    targets = {"floor": ">= 95% on both", "original": ">= 2x on `/ping`", "nginx": "-", "rie": "-"}
    for peer, label in (("floor", "the protocol's floor"), ("original", "the Python original"),
                        ("rie", "this stack through the AWS RIE"), ("nginx", "nginx")):
        as_share = peer in ("floor", "nginx")
        p, h = ratio(s, "builtin", "ping", peer), ratio(s, "builtin", "hello", peer)
        if p or h:
            lines.append(f"| {label} | {fmt_ratio(p, as_share)} | {fmt_ratio(h, as_share)} | {targets[peer]} |")
    b = s.get("builtin", {})
    for route in ("ping", "hello"):
        cpu = b.get(route, {}).get("cpu_us_per_request", {})
        if "gateway" in cpu and "function" in cpu:
            verdict = "within" if cpu["gateway"] <= cpu["function"] else "over"
            lines.append("")
            lines.append(f"`builtin` `{route}`: the gateway spends {cpu['gateway']:.0f} µs of CPU a request, "
                         f"the function {cpu['function']:.0f} µs ({verdict} the target: gateway <= function).")
    for warning in s.get("warnings") or []:
        lines += ["", f"**Warning:** {warning}."]
    return "\n".join(lines)


def render_stack(s: dict) -> str:
    modes = [m for m in ("builtin", "rie") if m in s]
    mb = lambda kb: f"{kb / 1024:.1f} MB"

    def rate(run: dict) -> str:
        share = f" ({run['share_of_nginx']:.1%} of nginx)" if "share_of_nginx" in run else ""
        return (f"**{run['rps']:,.0f} req/s**{share}{spread(run)}, p50 {run['p50_ms']} ms, "
                f"p99 {run['p99_ms']} ms{spread(run, 'p99_ms', '{} ms')}")

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(s[m]) for m in modes) + " |"

    names = {"builtin": "`builtin` (default)", "rie": "`rie` (AWS RIE)"}
    lines = [
        render_peers(s),
        "",
        "Each mode of the stack in full:",
        "",
        "| Measure | " + " | ".join(names[m] for m in modes) + " |",
        "|---|" + "---|" * len(modes),
        row("`GET /ping`", lambda r: rate(r["ping"])),
        row("`POST /api/v1/hello` with `{}`", lambda r: rate(r["hello"])),
        row("Cold start: process start to the first 200 from `/api/v1/hello`",
            lambda r: f"**{r['cold_start_ms']:.1f} ms**"),
        row("Resident memory, idle (environments start on demand)",
            lambda r: f"**{mb(r['rss_kb']['idle_no_environment'])}**"),
        row("Resident memory, one warm environment",
            lambda r: mb(r["rss_kb"]["one_warm_environment"])),
        row("Resident memory per execution environment",
            lambda r: mb(r["rss_kb"]["one_warm_environment"] - r["rss_kb"]["idle_no_environment"])),
        row("Resident memory, peak under load",
            lambda r: mb(max(r["ping"]["rss_peak_kb"], r["hello"]["rss_peak_kb"]))),
        row("One connection, `GET /ping` p50",
            lambda r: f"{r['one_connection_ping']['p50_ms']} ms ({r['one_connection_ping']['rps']:,.0f} req/s)"),
        row("Non-2xx responses, socket errors",
            lambda r: f"{r['ping']['non_2xx'] + r['hello']['non_2xx']}, "
                      f"{r['ping']['socket_errors'] or 'none'} / {r['hello']['socket_errors'] or 'none'}"),
        row("Exit status after SIGTERM", lambda r: "0" if r["clean_exit_on_sigterm"] else "not 0"),
    ]
    if "rie" in s and "rie_direct_one_connection" in s["rie"]:
        direct = s["rie"]["rie_direct_one_connection"]
        lines += ["", f"In `rie` mode, one connection at a time, the same function invoked straight through "
                      f"its RIE answers at p50 {direct['p50_ms']} ms ({direct['rps']:,.0f} req/s): the gateway "
                      f"adds **{s['rie']['gateway_added_us_per_request']:.0f} µs** per request over it."]
    p = s["pinning"]
    order = ("every server up at once, each trial running each server in turn, "
             if p.get("interleaved") else "")
    lines += [
        "",
        stamp(s) + f" Servers pinned to CPU {p['stack_cpu']}, wrk to CPU {p['load_cpu']}, "
        f"{p['connections']} connections, {p['seconds']} s per run, {p.get('trials', 1)} trials"
        f" ({order}the median reported).",
    ]
    return "\n".join(lines)


def render_loadtest(t: dict) -> str:
    lines = ["| Request | Requests | Failures | req/s (mean) | p50 | p95 | p99 |", "|---|---|---|---|---|---|---|"]
    for name, r in t["by_request"].items():
        label = f"**{name}**" if name == "Aggregated" else f"`{name}`"
        lines.append(f"| {label} | {r['requests']:,} | {r['failures']} | {r['rps']:,} | {r['p50_ms']:.0f} ms "
                     f"| {r['p95_ms']:.0f} ms | {r['p99_ms']:.0f} ms |")
    lines += ["", f"Peak {t['peak_rps']:,} req/s at up to {t['peak_users']} users; "
              f"{t['seconds']} s in all (ramp {t['ramp_seconds']:.0f} s, hold {t['hold_seconds']:.0f} s) "
              f"against the {t['host']}. " + stamp(t)]
    return "\n".join(lines)


# FaaS or containers, in money: docs/faas-or-containers.md's results:cost block (`render`)
# and docs/cost/cost.png (`cost`), from the stack bench's measured numbers and
# the list prices below. Nothing here imports matplotlib except chart_cost.

# Prices: the list prices known at the time of writing, as of 2026-11-30 (list
# prices as published; check the pages). This tool does not fetch them, and
# they change: check the pages before deciding anything on them.
PRICES_AS_OF = "2026-11-30"
# https://aws.amazon.com/lambda/pricing/ : Lambda on arm64 (Graviton),
# us-east-1, duration's first pricing tier; requests.
LAMBDA_ARM64_USD_PER_GB_SECOND = 0.0000133334
LAMBDA_USD_PER_MILLION_REQUESTS = 0.20
# https://aws.amazon.com/api-gateway/pricing/ : HTTP APIs, us-east-1, the
# first 300 million requests a month.
HTTP_API_USD_PER_MILLION_REQUESTS = 1.00
# https://cloud.google.com/kubernetes-engine/pricing : GKE Autopilot,
# general-purpose Pods, billed by their resource requests, us-central1.
AUTOPILOT_USD_PER_VCPU_HOUR = 0.0445
AUTOPILOT_USD_PER_GIB_HOUR = 0.0049225
HOURS_PER_MONTH = 730  # the month both price pages use

# How the services bill and size, as their documentation describes it.
# Lambda bills duration per 1 ms, rounded up, at least 1 ms
# (https://aws.amazon.com/lambda/pricing/), and gives CPU in proportion to
# memory, one vCPU at 1,769 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA_BILLING_MS = 1
LAMBDA_MB_PER_VCPU = 1769
# Autopilot raises a general-purpose Pod's requests into its CPU:memory ratio,
# 1 to 6.5 GiB per vCPU
# (https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests).
AUTOPILOT_MIN_GIB_PER_VCPU = 1.0

# The deployment's own numbers; tools/tests/test_cost.py keeps them equal to
# the files they come from.
HELLO_MEMORY_MB = 512                # template.yaml: HelloFunction's MemorySize
POD_CPU_REQUEST = 0.5                # k8s/base/deployment.yaml: requests.cpu 500m
POD_MEMORY_REQUEST_GIB = 64 / 1024   # k8s/base/deployment.yaml: requests.memory 64Mi
HPA_MIN_REPLICAS = 1                 # k8s/base/hpa.yaml: minReplicas
HPA_MAX_REPLICAS = 10                # k8s/base/hpa.yaml: maxReplicas
HPA_CPU_TARGET = 0.50                # k8s/base/hpa.yaml: averageUtilization 50 (% of the request)

COST_RATES = (1, 10, 100, 1_000, 10_000)  # the table's steady request rates, req/s
COST_CHART = ROOT / "docs" / "cost" / "cost.png"


def lambda_billed_ms(duration_us: float) -> int:
    """Lambda's billed duration of one invocation: per 1 ms, rounded up, at least 1 ms."""
    return max(LAMBDA_BILLING_MS, math.ceil(round(duration_us / 1000, 9)))


def lambda_usd_per_request(billed_ms: float, memory_mb: int = HELLO_MEMORY_MB) -> float:
    """One request through the HTTP API to a function: duration, invocation, API."""
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return (gb_seconds * LAMBDA_ARM64_USD_PER_GB_SECOND
            + (LAMBDA_USD_PER_MILLION_REQUESTS + HTTP_API_USD_PER_MILLION_REQUESTS) / 1e6)


def lambda_usd(requests: float, billed_ms: float, memory_mb: int = HELLO_MEMORY_MB) -> float:
    return requests * lambda_usd_per_request(billed_ms, memory_mb)


def pod_usd_per_hour(cpu: float = POD_CPU_REQUEST, memory_gib: float = POD_MEMORY_REQUEST_GIB) -> float:
    """A Pod on Autopilot for an hour, billed by its requests."""
    return cpu * AUTOPILOT_USD_PER_VCPU_HOUR + memory_gib * AUTOPILOT_USD_PER_GIB_HOUR


def autopilot_memory_gib(cpu: float, memory_gib: float) -> float:
    """The memory request Autopilot admits a Pod with: raised to its minimum GiB per vCPU."""
    return max(memory_gib, cpu * AUTOPILOT_MIN_GIB_PER_VCPU)


def pods_for(rate: float, capacity: float, min_replicas: int = HPA_MIN_REPLICAS) -> int:
    """Pods serving a steady rate, each up to `capacity` req/s: max(min, ceil(rate / capacity))."""
    return max(min_replicas, math.ceil(round(rate / capacity, 9)))


def break_even_rate(lambda_per_request: float, pod_per_hour: float, capacity: float,
                    min_replicas: int = HPA_MIN_REPLICAS):
    """The steady rate (req/s) above which the pods always cost less than Lambda.

    Lambda's cost per hour is a line through zero; the pods' a staircase,
    one more pod every `capacity` req/s. None if a full pod costs at least
    what Lambda charges for its capacity (the pods are then never cheaper for
    good)."""
    per_rps_hour = lambda_per_request * 3600  # Lambda's $ an hour for each req/s
    if per_rps_hour * capacity <= pod_per_hour:
        return None
    pods = min_replicas
    # Just above `pods` pods' capacity another pod starts: while that step
    # makes the pods dearer than Lambda again, the break-even is further up.
    while per_rps_hour * pods * capacity < (pods + 1) * pod_per_hour:
        pods += 1
    return pods * pod_per_hour / per_rps_hour


def cpus_in(cpu_list: str) -> int:
    """CPUs in a taskset list such as "1" or "0-1,3"."""
    count = 0
    for part in str(cpu_list).split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def cost_model(stack: dict) -> dict:
    """The cost model's inputs and results, from the stack bench's `builtin` run."""
    hello = stack["builtin"]["hello"]
    # Lambda bills the invocation's wall time in the function. The measured
    # figure closest to it: the function process's CPU time per `hello` in the
    # stack bench (the handler with its factoring, lambda_runtime's calls to
    # the Runtime API, the JSON), on a full x86 core. At 512 MB Lambda gives
    # 0.29 of a vCPU; if that share throttled the whole invocation it would
    # take cpu / share, the conservative estimate used here.
    function_cpu_us = hello["cpu_us_per_request"]["function"]
    vcpu = min(1.0, HELLO_MEMORY_MB / LAMBDA_MB_PER_VCPU)
    duration_us = function_cpu_us / vcpu
    billed_ms = lambda_billed_ms(duration_us)
    # Billing rounds each invocation up, so slow ones (trial's tail) bill more
    # than the mean suggests; but the mean of ceil(d) stays under mean(d) + 1 ms.
    worst_billed_ms = duration_us / 1000 + LAMBDA_BILLING_MS
    per_request = lambda_usd_per_request(billed_ms)
    # The stack's `hello` rate with the servers pinned to the bench's CPUs, per
    # CPU; a pod gets its CPU request's worth of it while the HPA holds it at
    # its target, and the HPA starts another pod past that.
    rps_per_cpu = hello["rps"] / cpus_in(stack["pinning"]["stack_cpu"])
    capacity = rps_per_cpu * POD_CPU_REQUEST * HPA_CPU_TARGET
    pod_hour = pod_usd_per_hour()
    admitted_gib = autopilot_memory_gib(POD_CPU_REQUEST, POD_MEMORY_REQUEST_GIB)
    admitted_pod_hour = pod_usd_per_hour(POD_CPU_REQUEST, admitted_gib)
    return {
        "function_cpu_us": function_cpu_us,
        "stack_cpu_us": sum(hello["cpu_us_per_request"].values()),
        "lambda_vcpu": vcpu,
        "duration_us": duration_us,
        "billed_ms": billed_ms,
        "worst_billed_ms": worst_billed_ms,
        "lambda_per_request": per_request,
        "lambda_per_million": per_request * 1e6,
        "lambda_worst_per_million": lambda_usd_per_request(worst_billed_ms) * 1e6,
        "rps_per_cpu": rps_per_cpu,
        "capacity": capacity,
        "pod_hour": pod_hour,
        "break_even": break_even_rate(per_request, pod_hour, capacity),
        "admitted_memory_gib": admitted_gib,
        "admitted_pod_hour": admitted_pod_hour,
        "admitted_break_even": break_even_rate(per_request, admitted_pod_hour, capacity),
    }


def lambda_usd_per_hour(m: dict, rate: float) -> float:
    return rate * 3600 * m["lambda_per_request"]


def pods_usd_per_hour(m: dict, rate: float) -> float:
    return pods_for(rate, m["capacity"]) * m["pod_hour"]


def usd(x: float) -> str:
    if x >= 1000:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    return f"${x:.3g}"


def price(x: float) -> str:
    """A list price as the pages print it: 0.0000133334, not 1.33334e-05."""
    whole, _, cents = f"{x:.10f}".rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def millions(requests: float) -> str:
    n = requests / 1e6
    return f"{n:,.1f} million" if n < 100 else f"{n:,.0f} million"


def render_cost(stack: dict) -> str:
    m = cost_model(stack)
    lines = ["| Steady `hello` rate | Requests a month | Lambda + HTTP API | GKE Autopilot pods | Cheaper |",
             "|---|---|---|---|---|"]
    for rate in COST_RATES:
        faas, pods = lambda_usd_per_hour(m, rate), pods_usd_per_hour(m, rate)
        count = pods_for(rate, m["capacity"])
        over = f", over the HPA's maxReplicas ({HPA_MAX_REPLICAS})" if count > HPA_MAX_REPLICAS else ""
        ratio = max(faas, pods) / min(faas, pods)
        cheaper = ("Lambda" if faas < pods else "pods") + (f", {ratio:.1f}x" if ratio < 10 else f", {ratio:,.0f}x")
        lines.append(f"| {rate:,} req/s | {millions(rate * 3600 * HOURS_PER_MONTH)} "
                     f"| {usd(faas * HOURS_PER_MONTH)} a month ({usd(faas)}/h) "
                     f"| {count} pod{'s' if count > 1 else ''}{over}: {usd(pods * HOURS_PER_MONTH)} a month "
                     f"({usd(pods)}/h) | {cheaper} |")
    be = m["break_even"]
    cpu_s = POD_CPU_REQUEST * AUTOPILOT_USD_PER_VCPU_HOUR
    mem_s = POD_MEMORY_REQUEST_GIB * AUTOPILOT_USD_PER_GIB_HOUR
    lines += [
        "",
        f"- **Lambda: ${m['lambda_per_million']:.4f} per million `hello` requests.** "
        f"{m['billed_ms']} ms billed at {HELLO_MEMORY_MB} MB "
        f"(${lambda_usd(1e6, m['billed_ms']) - lambda_usd(1e6, 0):.4f} a million), "
        f"${LAMBDA_USD_PER_MILLION_REQUESTS:.2f} for the invocations, "
        f"${HTTP_API_USD_PER_MILLION_REQUESTS:.2f} for the HTTP API. The billed duration: the function's "
        f"CPU time per request in the stack bench, {m['function_cpu_us']:.0f} µs on one x86 core, becomes "
        f"{m['duration_us']:.0f} µs if Lambda held it to the {m['lambda_vcpu']:.2f} vCPU that "
        f"{HELLO_MEMORY_MB} MB buys, and Lambda rounds up to {m['billed_ms']} ms. Invocations slower than "
        f"that (`trial`'s tail) bill more, but the mean billed duration stays under the mean duration "
        f"plus 1 ms ({m['worst_billed_ms']:.2f} ms): at most ${m['lambda_worst_per_million']:.4f} a million.",
        f"- **A pod: {usd(m['pod_hour'])} an hour** at its requests, {POD_CPU_REQUEST:g} vCPU "
        f"({usd(cpu_s)}) and {POD_MEMORY_REQUEST_GIB * 1024:.0f} MiB ({usd(mem_s)}). Autopilot admits "
        f"a general-purpose Pod with at least {AUTOPILOT_MIN_GIB_PER_VCPU:g} GiB per vCPU, so it would "
        f"bill this one at {m['admitted_memory_gib'] * 1024:.0f} MiB: {usd(m['admitted_pod_hour'])} an "
        f"hour, and a break-even of {m['admitted_break_even']:.1f} req/s.",
        f"- **A pod serves {m['capacity']:,.0f} `hello` req/s** before the HPA adds another: "
        f"{m['rps_per_cpu']:,.0f} req/s per CPU (the stack bench, `builtin`, on one CPU: about 1 s / "
        f"{m['stack_cpu_us']:.0f} µs, the CPU time a request costs the gateway and the function "
        f"together) x {POD_CPU_REQUEST:g} CPU requested x the HPA's "
        f"{HPA_CPU_TARGET:.0%} target. Pods = max({HPA_MIN_REPLICAS}, ceil(rate / "
        f"{m['capacity']:,.0f})).",
    ]
    if be is None:
        lines.append("- **No break-even**: a full pod costs more than Lambda charges for its requests.")
    else:
        lines.append(f"- **Break-even: {be:.1f} req/s** steady ({millions(be * 3600 * HOURS_PER_MONTH)} "
                     f"requests a month, {usd(m['pod_hour'] * HOURS_PER_MONTH)} a month either way): "
                     f"below it Lambda costs less, above it the pods do.")
    lines += [
        "",
        f"List prices as of {PRICES_AS_OF}: Lambda arm64 {price(LAMBDA_ARM64_USD_PER_GB_SECOND)} per "
        f"GB-second and {price(LAMBDA_USD_PER_MILLION_REQUESTS)} per million requests, HTTP API "
        f"{price(HTTP_API_USD_PER_MILLION_REQUESTS)} per million (first 300 million a month), us-east-1; "
        f"GKE Autopilot {price(AUTOPILOT_USD_PER_VCPU_HOUR)} per vCPU-hour and "
        f"{price(AUTOPILOT_USD_PER_GIB_HOUR)} per GiB-hour, us-central1; {HOURS_PER_MONTH} hours a month. "
        + stamp(stack),
    ]
    return "\n".join(lines)


def chart_cost(stack: dict, path: Path) -> None:
    """Cost per hour against a steady `hello` rate, log-log, for both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = cost_model(stack)
    low, high, steps = 0.1, 20_000.0, 400
    rates = [low * (high / low) ** (i / steps) for i in range(steps + 1)]
    # The staircase's edges exactly: the last rate k pods serve, and just past it.
    edge = m["capacity"]
    while edge < high:
        rates += [edge, edge * (1 + 1e-9)]
        edge += m["capacity"]
    rates.sort()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.loglog(rates, [lambda_usd_per_hour(m, r) for r in rates], color="tab:orange",
              label=f"Lambda arm64 {HELLO_MEMORY_MB} MB + HTTP API (${m['lambda_per_million']:.2f} a million)")
    ax.loglog(rates, [pods_usd_per_hour(m, r) for r in rates], color="tab:blue",
              label=f"GKE Autopilot pods, {POD_CPU_REQUEST * 1000:.0f}m CPU / "
                    f"{POD_MEMORY_REQUEST_GIB * 1024:.0f}Mi ({usd(m['pod_hour'])}/h, "
                    f"{m['capacity']:,.0f} req/s each)")
    if m["break_even"] is not None:
        be = m["break_even"]
        ax.axvline(be, color="gray", linestyle="--", linewidth=1)
        ax.text(be * 1.15, 0.04, f"break-even {be:.1f} req/s", transform=ax.get_xaxis_transform(),
                color="dimgray")
    top = HPA_MAX_REPLICAS * m["capacity"]
    ax.axvline(top, color="tab:blue", linestyle=":", linewidth=1)
    ax.text(top / 1.15, 0.04, f"HPA maxReplicas: {HPA_MAX_REPLICAS} pods", transform=ax.get_xaxis_transform(),
            ha="right", color="tab:blue")
    ax.set_xlabel("steady POST /api/v1/hello rate (requests/s)")
    ax.set_ylabel("cost per hour (USD)")
    ax.set_title(f"FaaS or containers: list prices as of {PRICES_AS_OF}, measured capacity")
    ax.grid(which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: Lambda "
          f"${m['lambda_per_million']:.4f} a million, a pod {usd(m['pod_hour'])}/h for "
          f"{m['capacity']:,.0f} req/s, break-even {m['break_even']:.1f} req/s")


def render_hpa(h: dict) -> str:
    rows = ["| Offered load (`hello`) | CPU it needs | Pods predicted | HPA settled at | Took | Steps "
            "| Utilization | Note |", "|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in h["rows"]:
        rows.append(f"| {r['rate']:,} req/s | {r['load_cores']:.2f} | {r['predicted']} | {r['settled']} "
                    f"| {r['took_s']} s | {' → '.join(map(str, r['steps']))} | {r['util']}% | {r['note']} |")
    return ("\n".join(rows) + f"\n\nEach `hello` costs {h['cpu_per_request_us']} µs of CPU (the stack bench's "
            f"function and gateway together), so a pod at the HPA's target carries {h['per_pod_req_s']:,} req/s. "
            f"Scale-down window {h['scale_down_window_s']} s and period {h['scale_down_period_s']} s (the test "
            f"overlay's; shipped: 300 s and 60 s). " + stamp(h))


def render_node(n: dict) -> str:
    """The image on a real node (tools/k8s/node-test.sh, in make k8s-test)."""
    h, r, k, a = n["hpa"], n["rollout"], n["pod_kill"], n["abuse"]
    rows = [
        "| What | Measured |",
        "|---|---|",
        f"| Locust, the repo's locustfile.py, 20 users for 20 s | {n['locust']['requests']:,} requests, "
        f"{n['locust']['failures']} failures |",
        f"| A rolling update under Locust load (2 replicas) | {r['requests']:,} requests, {r['failures']} failures |",
        f"| A pod deleted under Locust load (2 replicas) | {k['failures']} failures of {k['requests']:,}; "
        f"a replacement Ready within {k['recovery_s']} s |",
        f"| `/ping` only, 30 users for 75 s (the throttle's old victim) | {h['requests']:,} requests, "
        f"{h['failures']} failures, no 429 |",
        f"| The HPA on real CPU | first scale-up {h['first_scale_up_s']} s after the load began, the new pods "
        f"Ready at {h['pods_ready_s']} s, {h['replicas_at_end']} replicas at the load's end, back to 1 "
        f"{h['back_to_one_s']} s after it (scale-down window shortened to 30 s for the test) |",
        f"| 60 clients sending 6 MB bodies for 20 s | answers {a['answers']}; {a['restarts']} restarts, "
        f"not OOMKilled; the container's peak memory {a['peak_memory_bytes'] / 2**20:.0f} MiB of 128 |",
    ]
    return "\n".join(rows) + f"\n\nThe whole test took {n['seconds']} s. " + stamp(n)


def render_instructions(i: dict) -> str:
    """User-space instructions a request (tools/instructions.py, in make bench)."""
    g, f = i["servers"]["gateway"], i["servers"]["floor"]
    rows = ["| Server | `GET /ping` | `POST /api/v1/hello` |", "|---|---:|---:|",
            f"| the protocol's floor | {f['ping']:,} | {f['hello']:,} |",
            f"| the gateway (`builtin`) | {g['ping']:,} | {g['hello']:,} |",
            f"| the gateway over the floor | {g['ping'] / f['ping'] - 1:+.0%} | {g['hello'] / f['hello'] - 1:+.0%} |"]
    return ("\n".join(rows) + f"\n\nInstructions executed in user space by the server's own process for one "
            f"request, counted by callgrind over {i['requests']:,} requests on one connection after a warm-up "
            f"(the functions run outside it). " + stamp(i))


def render_reliability(r: dict) -> str:
    """make e2e's attacks on a 128 MiB pod (e2e/tests/gateway.rs)."""
    rows = ["| Attack | What the pod did |", "|---|---|"]
    if "slow-clients" in r:
        c = r["slow-clients"]
        rows.append(
            f"| {c['slow_heads']:,} clients trickling request heads and {c['slow_bodies']} trickling 6 MB "
            f"bodies, for {c['seconds']} s, from one machine | a fresh client's `/ping` every quarter second: "
            f"{c['fresh_requests'] - c['fresh_failed']} of {c['fresh_requests']} answered 200 within 1 s, the "
            f"slowest in {c['slowest_ms']:.0f} ms; {c['evicted']:,.0f} slow connections closed to make room; "
            f"the gateway's peak memory {c['gateway_peak_rss_kb'] / 1024:.0f} MiB, the pod's "
            f"{c['pod_peak_kb'] / 1024:.0f} of {c['limit_kb'] / 1024:.0f} MiB, {c['oom_kills']} OOM kills |")
    if "slow-bodies" in r:
        c = r["slow-bodies"]
        rows.append(
            f"| {c['slow_bodies']:,} clients declaring 1 MB bodies and sending a byte of them every 2 s, for "
            f"{c['seconds']} s, from one machine | a fresh client's `/ping` every quarter second: "
            f"{c['fresh_requests'] - c['fresh_failed']} of {c['fresh_requests']} answered 200 within 1 s, the "
            f"slowest in {c['slowest_ms']:.0f} ms; {c['evicted']:,.0f} slow connections closed to make room, "
            f"{c['attacker_cut']:,} cut in all (408 below 4 KiB/s); the gateway's peak memory "
            f"{c['gateway_peak_rss_kb'] / 1024:.0f} MiB, the pod's {c['pod_peak_kb'] / 1024:.0f} of "
            f"{c['limit_kb'] / 1024:.0f} MiB, {c['oom_kills']} OOM kills |")
    if "slow-invokers" in r:
        c = r["slow-invokers"]
        rows.append(
            f"| {c['callers']} connections from one pod of the cluster to the admin port, each posting an Invoke "
            f"API head that declares a 1 MB payload and trickling it, for {c['seconds']} s | the kubelet's probes "
            f"every second: "
            f"{c['probes'] - c['probes_failed']} of {c['probes']} answered within 2 s on the probes' port "
            f"(slowest {c['slowest_probe_ms']:.0f} ms), {c['admin_probes'] - c['admin_probes_failed']} of "
            f"{c['admin_probes']} on the admin port (slowest {c['slowest_admin_probe_ms']:.0f} ms); the unsigned "
            f"calls refused from their heads, {c['attacker_cut']:,} connections cut; {c['oom_kills']} OOM kills |")
    if "key-bomb" in r:
        c = r["key-bomb"]
        answers = ", ".join(f"{n} {k.removeprefix('Ok(').removesuffix(')')}" for k, n in sorted(c["answers"].items()))
        rows.append(
            f"| A {c['body_bytes'] / 1e6:.1f} MB JSON object of 520,000 short keys at `hello`, once and then "
            f"{c['at_once']} at once | answers: {answers}; no process of the pod killed or replaced "
            f"({c['hello_cold_starts']:.0f} cold start of `hello` in all), `hello`'s environment at most "
            f"{c['hello_env_peak_bytes'] / 2**20:.0f} MiB, the pod's peak {c['pod_peak_kb'] / 1024:.0f} of "
            f"{c['limit_kb'] / 1024:.0f} MiB, {c['oom_kills']} OOM kills |")
    if "slow-readers" in r:
        c = r["slow-readers"]
        rows.append(
            f"| {c['readers']:,} clients asking for the Swagger UI's script ({c['answer_bytes'] / 1e6:.1f} MB) and "
            f"never reading it, for {c['seconds']} s, from one machine | a fresh client's `/ping` every quarter "
            f"second: {c['fresh_requests'] - c['fresh_failed']} of {c['fresh_requests']} answered 200 within 1 s, "
            f"the slowest in {c['slowest_ms']:.0f} ms; {c['closed_for_memory']:,.0f} of the readers' connections "
            f"closed for the memory budget, {c['refused_over_budget']:,.0f} of their requests refused (503); the "
            f"gateway's peak memory {c['gateway_peak_rss_kb'] / 1024:.0f} MiB, the pod's "
            f"{c['pod_peak_kb'] / 1024:.0f} of {c['limit_kb'] / 1024:.0f} MiB, {c['oom_kills']} OOM kills |")
    if "flood" in r:
        f = r["flood"]
        rows.append(
            f"| A function writing {f['output_mb']} MB of output an invocation | {f['log_bytes'] / 2**20:.1f} MiB "
            f"reached the log, {f['dropped_bytes'] / 1e6:.0f} MB dropped and counted (a 100 MB line cut to "
            f"16 KiB); `/ping` meanwhile at worst {f['slowest_ping_ms']:.0f} ms; the gateway's memory "
            f"{f['rss_idle_kb'] / 1024:.1f} MiB before, {f['rss_peak_kb'] / 1024:.1f} MiB at its peak |")
    if "forks" in r:
        k = r["forks"]
        rows.append(
            f"| A function whose children ignore SIGTERM | the gateway stopped in {k['shutdown_ms']:.0f} ms of "
            f"its {k['grace_s']} s grace, nothing left running |")
    text = "\n".join(rows) + "\n\n"
    if "extension" in r:
        e = r["extension"]
        text += (f"An external extension costs each environment what it holds: the `lambda_extension` "
                 f"test fixture beside `hello`, {e['extension_rss_kb'] / 1024:.1f} MiB resident, counted in the "
                 f"environment's memory (`kf_gateway_environment_max_memory_bytes`).\n\n")
    return text + stamp(r)


def render_headline(s: dict) -> str:
    b, r, nginx = s["builtin"], s.get("rie"), s.get("nginx_ping", {})
    m = cost_model(s)
    line = (f"On one CPU (`make bench`): `GET /ping` at **{b['ping']['rps']:,.0f} req/s** and "
            f"`POST /api/v1/hello` at **{b['hello']['rps']:,.0f} req/s** (p99 {b['hello']['p99_ms']} ms), "
            f"a cold start of {b['cold_start_ms']:.1f} ms, {b['rss_kb']['idle_no_environment'] / 1024:.1f} MB idle")
    floor_p, floor_h = ratio(s, "builtin", "ping", "floor"), ratio(s, "builtin", "hello", "floor")
    if floor_p and floor_h:
        line += (f"; **{floor_p['median']:.0%}** and **{floor_h['median']:.0%}** of what the Lambda Runtime "
                 f"API protocol itself allows (its floor, measured beside it)")
    orig_p, orig_h = ratio(s, "builtin", "ping", "original"), ratio(s, "builtin", "hello", "original")
    if orig_p and orig_h:
        line += (f"; **{orig_p['median']:,.1f}x** and **{orig_h['median']:,.0f}x** the Python original "
                 f"(FastAPI on uvicorn) on the same CPU")
    if r:
        line += (f"; through the AWS RIE instead, {r['ping']['rps']:,.0f} and {r['hello']['rps']:,.0f} req/s")
    if "rps" in nginx:
        line += f"; nginx serving the same `/ping` bytes on the same CPU, {nginx['rps']:,.0f} req/s"
    line += "."
    if m["break_even"] is not None:
        line += (f" Priced at list prices, Lambda costs less than GKE Autopilot pods below a steady "
                 f"{m['break_even']:.1f} `hello` req/s, the pods above it.")
    return line + " " + stamp(s)


# (block, results.json section it is made from, renderer)
BLOCKS = (("headline", "stack", render_headline), ("compute", "compute", render_compute),
          ("stack", "stack", render_stack), ("loadtest", "loadtest", render_loadtest),
          ("cost", "stack", render_cost), ("node", "node", render_node), ("hpa", "hpa", render_hpa),
          ("instructions", "instructions", render_instructions),
          ("reliability", "reliability", render_reliability))


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(paths: list[Path]) -> None:
    """Rewrite every `<!-- results:NAME -->` block in the README and docs/
    from results/results.json; each block must be in exactly one file."""
    data = load()
    found = {name: [] for name, _, _ in BLOCKS}
    for path in paths:
        text = original = path.read_text()
        for name, source, fn in BLOCKS:
            opening, closing = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
            block = re.compile(re.escape(opening) + ".*?" + re.escape(closing), re.S)
            if not block.search(text):
                continue
            found[name].append(path)
            if source in data:
                rendered = f"{opening}\n{fn(data[source])}\n{closing}"
                text = block.sub(lambda _: rendered, text)
        if text != original:
            path.write_text(text)
            print(f"rendered {path.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")
    for name, places in found.items():
        if len(places) != 1:
            sys.exit(f"results:{name} is in {len(places)} documents ({', '.join(map(str, places))}); it must be in one")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "render":
        render([Path(sys.argv[2])] if len(sys.argv) == 3 else documents())
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "cost":
        chart_cost(load()["stack"], Path(sys.argv[2]) if len(sys.argv) == 3 else COST_CHART)
    else:
        sys.exit(__doc__)
