#!/usr/bin/env python3
"""The one results file, and the README tables made from it.

    results.py record compute FILE    # divan's output of `cargo bench -p shared --bench factor`
    results.py record stack FILE      # stack-bench's JSON
    results.py record loadtest FILE   # tools/loadtest.py's summary.json
    results.py render [README.md]     # rewrite the README's generated tables

`make bench` and `make loadtest` call it. Each section of results/results.json
keeps the machine, date and commit it was measured on; the README's tables
between `<!-- results:NAME -->` and `<!-- /results:NAME -->` are rewritten
from it, so the README states no number that a command did not produce.
"""

import json
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
    # Changes to the results themselves (this file, the README tables, the
    # charts) do not make the measured code differ from the commit.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!README.md", ":!results", ":!docs/loadtest"], cwd=ROOT,
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
    text = Path(path).read_text()
    if kind == "compute":
        section = {"cases": parse_divan(text)}
    elif kind == "stack":
        section = json.loads(text)  # stack-bench records its own machine, date and commit
    elif kind == "loadtest":
        section = json.loads(text)
        section.pop("history", None)
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


def render_stack(s: dict) -> str:
    ping, hello, rss = s["ping"], s["hello"], s["rss_kb"]
    over = s["gateway_overhead"]
    mb = lambda kb: f"{kb / 1024:.1f} MB"
    lines = [
        "| Measure | Result | Target (the Python original) |",
        "|---|---|---|",
        f"| Cold start: process start to the first 200 from `/api/v1/hello` | **{s['cold_start_ms']:.0f} ms** | < 100 ms (~250 ms) |",
        f"| Resident memory, idle (gateway only: environments start on demand) | **{mb(rss['idle_no_environment'])}** | < 40 MB (~38 MB) |",
        f"| Resident memory, one warm environment (gateway + RIE + function) | {mb(rss['one_warm_environment'])} | |",
        f"| Resident memory per execution environment (RIE + function) | {mb(rss['one_warm_environment'] - rss['idle_no_environment'])} | |",
        f"| Resident memory, peak under load | **{mb(max(ping['rss_peak_kb'], hello['rss_peak_kb']))}** | < 100 MB |",
        f"| `GET /ping` | **{ping['rps']:,.0f} req/s**, p50 {ping['p50_ms']} ms, p99 {ping['p99_ms']} ms | >= 6,000 req/s (~6,000) |",
        f"| `POST /api/v1/hello` with `{{}}` | **{hello['rps']:,.0f} req/s**, p50 {hello['p50_ms']} ms, p99 {hello['p99_ms']} ms | >= 3,000 req/s, p99 < 20 ms (~55 req/s) |",
        f"| Non-2xx responses, socket errors | {ping['non_2xx'] + hello['non_2xx']}, {ping['socket_errors'] or 'none'} / {hello['socket_errors'] or 'none'} | |",
        f"| Exit status after SIGTERM | {'0' if s['clean_exit_on_sigterm'] else 'not 0'} | |",
        "",
        "CPU per request of each process (µs of user + system time, from `/proc`):",
        "",
        "| Run | gateway | RIE | function | total |",
        "|---|---|---|---|---|",
    ]
    for name, run in (("`GET /ping`", ping), ("`POST /api/v1/hello`", hello)):
        cpu = run["cpu_us_per_request"]
        total = sum(cpu.values())
        lines.append(f"| {name} | {cpu.get('gateway', 0):.0f} | {cpu.get('rie', 0):.0f} "
                     f"| {cpu.get('function', 0):.0f} | {total:.0f} |")
    via, direct = over["one_connection_via_gateway"], over["one_connection_rie_direct"]
    lines += [
        "",
        f"The gateway's own cost, one connection at a time: `/ping` through the gateway "
        f"p50 {via['p50_ms']} ms ({via['rps']:,.0f} req/s); the same function straight through "
        f"its RIE p50 {direct['p50_ms']} ms ({direct['rps']:,.0f} req/s): "
        f"**{over['added_latency_us_per_request']:.0f} µs** added per request.",
        "",
        stamp(s) + f" Stack pinned to CPU {s['pinning']['stack_cpu']}, wrk to CPU "
        f"{s['pinning']['load_cpu']}, {s['pinning']['connections']} connections, "
        f"{s['pinning']['seconds']} s per run.",
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


def render(readme: Path) -> None:
    data = load()
    text = readme.read_text()
    for name, fn in (("compute", render_compute), ("stack", render_stack), ("loadtest", render_loadtest)):
        if name not in data:
            continue
        opening, closing = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
        block = re.compile(re.escape(opening) + ".*?" + re.escape(closing), re.S)
        if not block.search(text):
            sys.exit(f"README has no results:{name} block")
        rendered = f"{opening}\n{fn(data[name])}\n{closing}"
        text = block.sub(lambda _: rendered, text)
    readme.write_text(text)
    print(f"rendered {readme.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "render":
        render(Path(sys.argv[2]) if len(sys.argv) == 3 else ROOT / "README.md")
    else:
        sys.exit(__doc__)
