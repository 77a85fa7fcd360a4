#!/usr/bin/python3
"""Turns the raw results of bench/run.sh into RESULTS.md, results.json and results.png.

    report.py WORK OUT   (settings come from the environment run.sh exports)

WORK holds wrk/N-SCENARIO-TARGET-ROUND.txt (wrk's output; .txt.cpu: CPU ticks of the
target's process tree meanwhile) and held.jsonl (holder.py's lines). Exits 1 if a wrk run
could not be parsed or served no request at all (the harness is broken), never on timings.
"""
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

TARGETS = ["direct", "sluice", "haproxy", "nginx"]
NAMES = {"direct": "direct (1 backend)", "sluice": "sluice", "haproxy": "HAProxy",
         "nginx": "nginx stream"}
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "keepalive close many").split()
LABELS = {
    "keepalive": f"keep-alive, {os.environ.get('BENCH_C_KEEPALIVE', '?')} conns",
    "close": f"new connection per request, {os.environ.get('BENCH_C_CLOSE', '?')} conns",
    "many": f"keep-alive, {os.environ.get('BENCH_C_MANY', '?')} conns",
}
SHORT = {"keepalive": f"keep-alive c{os.environ.get('BENCH_C_KEEPALIVE', '?')}",
         "close": f"new conn/req c{os.environ.get('BENCH_C_CLOSE', '?')}",
         "many": f"keep-alive c{os.environ.get('BENCH_C_MANY', '?')}"}  # chart labels
CLK_TCK = os.sysconf("SC_CLK_TCK")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def duration_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path).read()
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    if not m or "Requests/sec:" not in text:
        raise ValueError(f"{path}: not a wrk report:\n{text}")
    run = {"requests": int(m.group(1)), "seconds": duration_ms(m.group(2)) / 1e3}
    run["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        run[f"p{pct}_ms"] = duration_ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    run["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    run["non2xx"] = int(m.group(1)) if m else 0
    run["errors"] = run["socket_errors"] + run["non2xx"]
    ticks = int(open(path + ".cpu").read())
    run["cpu_us_per_req"] = ticks * 1e6 / CLK_TCK / run["requests"] if run["requests"] else None
    others = path + ".others"
    run["others_cpu_pct"] = (int(open(others).read()) * 100 / CLK_TCK / run["seconds"]
                             if os.path.exists(others) else None)
    return run


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def command_output(*argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": command_output("nproc"),
        "cpu": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "os": command_output("sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""),
        "sluice": command_output(os.environ.get("SLUICE_BIN", "sluice"), "--version"),
        "haproxy": command_output("haproxy", "-v"),
        "nginx": command_output("nginx", "-v"),
        "wrk": command_output("wrk", "-v"),
        "date": (os.environ.get("BENCH_DATE")
                 or command_output("date", "-u", "+%Y-%m-%d %H:%M UTC")),
        "load_start": os.environ.get("BENCH_LOAD_START", "?"),
    }


def others_note(runs):
    pcts = [r["others_cpu_pct"] for rs in runs.values() for r in rs
            if r["others_cpu_pct"] is not None]
    if not pcts:
        return ""
    return (f"Other work on the machine (processes outside the benchmark) used on average "
            f"{statistics.mean(pcts):.0f}% of one CPU during the wrk runs, at most "
            f"{max(pcts):.0f}% (column \"others' CPU\": median per row). Where that is high "
            "the numbers are disturbed, and not evenly: the scheduler lets a balancer with a "
            "thread per connection (sluice) take more CPU back from that other work than one "
            "with a few event-loop threads (see how the column drops on sluice's rows), which "
            "favours it; rerun on a quiet machine"
            + (" (this run: every benchmark process, and its session (autogroup), at nice "
               f"{os.environ['BENCH_NICE']}, "
               "which shrinks that effect)." if os.environ.get("BENCH_NICE") else ", or with "
               "BENCH_NICE=-15."))


def main():
    work, out = sys.argv[1], sys.argv[2]
    runs, broken = {}, []
    for path in sorted(glob.glob(os.path.join(work, "wrk", "*.txt"))):
        n, scenario, target, rnd = os.path.basename(path)[:-4].split("-")
        try:
            run = parse_wrk(path)
        except (ValueError, OSError) as e:
            broken.append(str(e))
            continue
        if run["requests"] == 0:
            broken.append(f"{path}: no request served")
        runs.setdefault((int(n), scenario, target), []).append(run)
    held = []
    if os.path.exists(os.path.join(work, "held.jsonl")):
        held = [json.loads(line) for line in open(os.path.join(work, "held.jsonl")) if line.strip()]

    workers = sorted({k[0] for k in runs})
    summary = {}
    for key, rs in runs.items():
        summary[key] = {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "cpu_us_per_req": median([r["cpu_us_per_req"] for r in rs]),
            "others_cpu_pct": median([r["others_cpu_pct"] for r in rs]),
            "rounds": len(rs),
        }

    info = machine()
    rounds = os.environ.get("BENCH_ROUNDS", "?")
    md = ["# sluice benchmark results", ""]
    if os.environ.get("BENCH_SMOKE") == "1":
        md += ["**Smoke run** (one short round, small counts): proves the harness works; "
               "its numbers mean nothing.", ""]
    md += [
        f"Produced by `{os.environ.get('BENCH_COMMAND', 'bash bench/run.sh')}` on {info['date']}.",
        "",
        "| machine | |", "|---|---|",
        f"| CPUs (`nproc`) | {info['nproc']} |",
        f"| CPU model | {info['cpu']} |",
        f"| OS, kernel | {info['os']}, {info['kernel']} |",
        f"| sluice | {info['sluice']} |",
        f"| HAProxy | {info['haproxy']} |",
        f"| nginx | {info['nginx']} |",
        f"| wrk | {info['wrk']} |",
        f"| load average (1, 5, 15 min) just before the run | {info['load_start']} |",
        "",
        "How: client (wrk, 2 threads), balancer and the two nginx backends (1 worker each) all "
        "share this machine's CPUs over loopback, without pinning; so compare ratios within "
        "this run, not absolute numbers across machines. Each round runs every scenario on "
        "direct (one backend, no balancer: the limit), sluice, HAProxy and nginx in turn, "
        f"{os.environ.get('BENCH_DURATION', '?')} s each; the tables give the median of "
        f"{rounds} rounds, errors summed over the rounds. N is the same for each balancer: "
        "sluice `--workers N`, HAProxy `nbthread N`, nginx `worker_processes N`. HAProxy: "
        "`mode tcp`, `balance roundrobin`, "
        + ("servers with `check`. " if os.environ.get("BENCH_HAPROXY_CHECK") == "1"
           else "no health checks. ")
        + "nginx `stream`: round robin, no active checks (it has none). sluice: its TCP "
        "connect check every 5 s (it cannot be turned off). CPU/req: user+system time of the "
        "balancer's whole process tree during the run divided by the requests served (for "
        "direct: the backend nginx's own).",
        "",
        others_note(runs),
        "",
        "![requests per second per scenario and balancer](results.png)",
        "",
    ]

    md += ["## Ratios (sluice divided by the other; req/s: higher is better for sluice, "
           "CPU/req: lower is better)", "",
           "| N | scenario | req/s vs HAProxy | req/s vs nginx | req/s vs direct "
           "| CPU/req vs HAProxy | CPU/req vs nginx |",
           "|---|---|---|---|---|---|---|"]
    for n in workers:
        for sc in SCENARIOS:
            s = {t: summary.get((n, sc, t), {}) for t in TARGETS}
            md.append(f"| {n} | {LABELS[sc]} | " + " | ".join([
                ratio(s["sluice"].get("rps"), s["haproxy"].get("rps")),
                ratio(s["sluice"].get("rps"), s["nginx"].get("rps")),
                ratio(s["sluice"].get("rps"), s["direct"].get("rps")),
                ratio(s["sluice"].get("cpu_us_per_req"), s["haproxy"].get("cpu_us_per_req")),
                ratio(s["sluice"].get("cpu_us_per_req"), s["nginx"].get("cpu_us_per_req")),
            ]) + " |")
    md.append("")

    md += ["## Throughput and latency", "",
           "| N | scenario | target | req/s | p50 ms | p99 ms | errors | CPU µs/req "
           "| others' CPU % |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in workers:
        for sc in SCENARIOS:
            for t in TARGETS:
                s = summary.get((n, sc, t))
                if not s:
                    continue
                md.append(f"| {n} | {LABELS[sc]} | {NAMES[t]} | {fmt(s['rps'])} | "
                          f"{fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {s['errors']} | "
                          f"{fmt(s['cpu_us_per_req'], 1)} | {fmt(s['others_cpu_pct'])} |")
    md.append("")

    if held:
        md += ["## Held connections", "",
               "Each connection sends `GET / HTTP/1.1\\r\\nHost: x\\r\\n` without the final "
               "blank line and waits, so the balancer holds it open to a backend. Bytes per "
               "connection: growth of the resident memory (sum of VmRSS over the balancer's "
               "process tree; the kernel's socket buffers are not in it) divided by the "
               "connections held. Then every request is completed; "
               "errors are failed connects, early closes, resets, timeouts and non-200 replies. "
               "Each balancer is freshly started for this.", "",
               "| N | balancer | held | bytes/conn | RSS before → after | threads after "
               "| errors | open time s |", "|---|---|---|---|---|---|---|---|"]
        for h in held:
            kinds = ", ".join(f"{k} {v}" for k, v in h["error_kinds"].items())
            md.append(
                f"| {h['workers']} | {NAMES[h['balancer']]} | {h['held']}/{h['count']} | "
                f"{fmt(h['bytes_per_conn'])} | {h['rss_before'] / 2**20:.1f} → "
                f"{h['rss_after'] / 2**20:.1f} MiB | {h['threads_after']} | "
                f"{h['errors']}{' (' + kinds + ')' if kinds else ''} | {h['open_seconds']} |")
        md.append("")
    if broken:
        md += ["## Broken runs", ""] + [f"```\n{b}\n```" for b in broken] + [""]

    # What was tried on the data path and what each gave: kept by hand in bench/TRIED.md,
    # appended so that RESULTS.md holds the numbers and the story behind them.
    tried = os.path.join(os.path.dirname(os.path.abspath(__file__)), "TRIED.md")
    if os.path.exists(tried):
        md += [open(tried).read().rstrip(), ""]

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"machine": info,
                   "summary": [dict(workers=k[0], scenario=k[1], target=k[2], **v)
                               for k, v in sorted(summary.items())],
                   "runs": [dict(workers=k[0], scenario=k[1], target=k[2], **r)
                            for k, rs in sorted(runs.items()) for r in rs],
                   "held": held}, f, indent=1)

    data = os.path.join(work, "chart.dat")
    with open(data, "w") as f:
        f.write("scenario " + " ".join(f'"{NAMES[t]}"' for t in TARGETS) + "\n")
        for n in workers:
            for sc in SCENARIOS:
                vals = [summary.get((n, sc, t), {}).get("rps") or 0 for t in TARGETS]
                f.write(f'"{SHORT[sc]}\\nN={n}" ' + " ".join(f"{v:.0f}" for v in vals) + "\n")
    subtitle = (f"{info['cpu']}, {info['nproc']} CPUs shared by wrk, balancer and backends; "
                f"N = workers/threads per balancer; {info['date']}")
    subprocess.run(["gnuplot", "-e", f"data='{data}'; out='{os.path.join(out, 'results.png')}'; "
                    f"clusters={len(workers) * len(SCENARIOS)}; subtitle='{subtitle}'",
                    os.path.join(os.path.dirname(__file__), "chart.gp")],
                   check=True)

    print("\n".join(md))
    if broken:
        print(f"report: {len(broken)} broken run(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
