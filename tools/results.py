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
    modes = [m for m in ("builtin", "rie") if m in s]
    nginx = s.get("nginx_ping", {})
    mb = lambda kb: f"{kb / 1024:.1f} MB"

    def rate(run: dict) -> str:
        share = f" ({run['share_of_nginx']:.1%} of nginx)" if "share_of_nginx" in run else ""
        return f"**{run['rps']:,.0f} req/s**{share}, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms"

    def row(label: str, cell, target: str = "") -> str:
        return f"| {label} | " + " | ".join(cell(s[m]) for m in modes) + f" | {target} |"

    names = {"builtin": "`builtin` (default)", "rie": "`rie` (AWS RIE)"}
    lines = [
        "| Measure | " + " | ".join(names[m] for m in modes) + " | Target |",
        "|---|" + "---|" * len(modes) + "---|",
        row("`GET /ping`", lambda r: rate(r["ping"]), ">= 7,000 req/s (builtin)"),
        row("`POST /api/v1/hello` with `{}`", lambda r: rate(r["hello"]),
            ">= 3,500 req/s, p99 < 20 ms (builtin)"),
        row("Cold start: process start to the first 200 from `/api/v1/hello`",
            lambda r: f"**{r['cold_start_ms']:.1f} ms**", "< 20 ms (builtin)"),
        row("Resident memory, idle (environments start on demand)",
            lambda r: f"**{mb(r['rss_kb']['idle_no_environment'])}**", "< 10 MB (builtin)"),
        row("Resident memory, one warm environment",
            lambda r: mb(r["rss_kb"]["one_warm_environment"])),
        row("Resident memory per execution environment",
            lambda r: mb(r["rss_kb"]["one_warm_environment"] - r["rss_kb"]["idle_no_environment"])),
        row("Resident memory, peak under load",
            lambda r: mb(max(r["ping"]["rss_peak_kb"], r["hello"]["rss_peak_kb"])), "< 100 MB"),
        row("One connection, `GET /ping` p50",
            lambda r: f"{r['one_connection_ping']['p50_ms']} ms ({r['one_connection_ping']['rps']:,.0f} req/s)"),
        row("Non-2xx responses, socket errors",
            lambda r: f"{r['ping']['non_2xx'] + r['hello']['non_2xx']}, "
                      f"{r['ping']['socket_errors'] or 'none'} / {r['hello']['socket_errors'] or 'none'}"),
        row("Exit status after SIGTERM", lambda r: "0" if r["clean_exit_on_sigterm"] else "not 0"),
        "",
    ]
    if "rps" in nginx:
        lines.append(f"The ceiling, in the same run on the same CPU: nginx answering `/ping` with the same "
                     f"bytes, **{nginx['rps']:,.0f} req/s**, p50 {nginx['p50_ms']} ms, p99 {nginx['p99_ms']} ms.")
    else:
        lines.append(f"nginx baseline missing: {nginx.get('missing', 'not measured')}.")
    lines += [
        "",
        "CPU per request of each process (µs of user + system time, from `/proc`):",
        "",
        "| Mode | Run | gateway | RIE | function | total |",
        "|---|---|---|---|---|---|",
    ]
    for m in modes:
        for name, run in (("`GET /ping`", s[m]["ping"]), ("`POST /api/v1/hello`", s[m]["hello"])):
            cpu = run["cpu_us_per_request"]
            rie = f"{cpu['rie']:.0f}" if "rie" in cpu else "-"
            lines.append(f"| {m} | {name} | {cpu.get('gateway', 0):.0f} | {rie} "
                         f"| {cpu.get('function', 0):.0f} | {sum(cpu.values()):.0f} |")
    if "rie" in s and "rie_direct_one_connection" in s["rie"]:
        direct = s["rie"]["rie_direct_one_connection"]
        lines += ["", f"In `rie` mode, one connection at a time, the same function invoked straight through "
                      f"its RIE answers at p50 {direct['p50_ms']} ms ({direct['rps']:,.0f} req/s): the gateway "
                      f"adds **{s['rie']['gateway_added_us_per_request']:.0f} µs** per request over it."]
    lines += [
        "",
        stamp(s) + f" Servers pinned to CPU {s['pinning']['stack_cpu']}, wrk to CPU "
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
