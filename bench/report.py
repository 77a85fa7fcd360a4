#!/usr/bin/python3
"""Turns the raw results of bench/run.sh into RESULTS.md, results.json and results.png.

    report.py WORK OUT   (settings come from the environment run.sh exports)

WORK holds wrk/N-SCENARIO-TARGET-ROUND.txt (wrk's output; .txt.cpu: CPU ticks of the
target's process tree meanwhile; .txt.machine: busy ticks of all CPUs; .txt.others: ticks of
processes outside the benchmark), held.jsonl (holder.py's lines) and relays.txt (each sluice
started: "KIND RELAY", the relay its start-up line names). Exits 1 if a wrk run could not be
parsed or served no request at all (the harness is broken), never on timings.
"""
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

# Every target, in the order of the tables and the chart's bars; sluice-RELAY is sluice with
# `relay = "RELAY"`, haproxy-splice HAProxy with `option splice-response`.
TARGETS = ["direct", "sluice-user", "sluice-kernel", "sluice-auto", "haproxy", "haproxy-splice",
           "nginx"]
NAMES = {"direct": "direct (1 backend)", "sluice-user": "sluice (user relay)",
         "sluice-kernel": "sluice (kernel relay)", "sluice-auto": "sluice (auto)",
         "haproxy": "HAProxy", "haproxy-splice": "HAProxy (splice)", "nginx": "nginx stream"}
RELAY_HOW = {
    "sluice-user": "`relay = \"user\"`: the connection's thread reads and writes",
    "sluice-kernel": "`relay = \"kernel\"`: a BPF sockmap program moves every "
                     "connection's bytes from the first, in softirq and kworker context",
    "sluice-auto": "`relay = \"auto\"`: the user relay for a connection's first exchange, "
                   "then the kernel's",
}
COLORS = {"direct": "#9e9e9e", "sluice-user": "#1f77b4", "sluice-kernel": "#9467bd",
          "sluice-auto": "#17becf", "haproxy": "#ff7f0e", "haproxy-splice": "#b35806",
          "nginx": "#2ca02c"}  # chart bars
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "keepalive close many low bulk").split()
CONNS = {sc: os.environ.get(f"BENCH_C_{sc.upper()}", "?")
         for sc in ("keepalive", "close", "many", "low", "bulk")}
LABELS = {
    "keepalive": f"keep-alive, {CONNS['keepalive']} conns",
    "close": f"new connection per request, {CONNS['close']} conns",
    "many": f"keep-alive, {CONNS['many']} conns",
    "low": f"keep-alive, {CONNS['low']} conns (low concurrency)",
    "bulk": f"1 MiB responses, keep-alive, {CONNS['bulk']} conns",
}
SHORT = {"keepalive": f"keep-alive c{CONNS['keepalive']}",
         "close": f"new conn/req c{CONNS['close']}",
         "many": f"keep-alive c{CONNS['many']}",
         "low": f"keep-alive c{CONNS['low']}",
         "bulk": f"1 MiB c{CONNS['bulk']}"}  # chart labels
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
    busy = path + ".machine"
    run["machine_cpu_us_per_req"] = (
        int(open(busy).read()) * 1e6 / CLK_TCK / run["requests"]
        if run["requests"] and os.path.exists(busy) else None)
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
    return f"{a / b:.2f}" if a is not None and b else "–"


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
            "thread per connection (sluice's user relay) take more CPU back from that other "
            "work than one with a few event-loop threads (see how the column drops on its "
            "rows), which favours it; rerun on a quiet machine"
            + (" (this run: every benchmark process, and its session (autogroup), at nice "
               f"{os.environ['BENCH_NICE']}, "
               "which shrinks that effect)." if os.environ.get("BENCH_NICE") else ", or with "
               "BENCH_NICE=-15."))


def name(target):
    return NAMES.get(target, target)


def read_relays(work):
    """{sluice kind: the relays its start-up lines named} from relays.txt."""
    relays = {}
    path = os.path.join(work, "relays.txt")
    if os.path.exists(path):
        for line in open(path):
            kind, _, relay = line.strip().partition(" ")
            if kind:
                relays.setdefault(kind, set()).add(relay)
    return {k: sorted(v) for k, v in relays.items()}


def how(rounds, sluices):
    """The method, as run: the "How:" paragraph and the one on CPU figures."""
    conns = CONNS  # short
    relays = "; ".join(f"{name(t)}, {RELAY_HOW[t]}" for t in sluices if t in RELAY_HOW)
    method = (
        "How: client (wrk, 2 threads), balancer and the two nginx backends (1 worker each) all "
        "share this machine's CPUs over loopback, without pinning; so compare ratios within "
        "this run, not absolute numbers across machines. Scenarios: keep-alive with "
        f"{conns['keepalive']} and with {conns['many']} connections; a new connection per "
        f"request (`Connection: close`) with {conns['close']}; keep-alive with {conns['low']} "
        "(low concurrency, where latency matters most: p50 and p99 come from `wrk --latency`); "
        "bulk: 1 MiB responses (a static file the backends send with `sendfile`) over "
        f"{conns['bulk']} keep-alive connections, where req/s is about MiB/s. Each round runs "
        "every scenario on direct (one backend, no balancer: the limit); on sluice once per "
        f"relay ({relays}); on HAProxy and nginx; and, in the bulk scenario only, on HAProxy "
        "(splice), HAProxy with `option splice-response`; "
        f"{os.environ.get('BENCH_DURATION', '?')} s each. The tables give the median of "
        f"{rounds} round(s), errors summed over the rounds. N is the same for each balancer: "
        "sluice `--workers N`, HAProxy `nbthread N`, nginx `worker_processes N`. HAProxy: "
        "`mode tcp`, `balance roundrobin`, "
        + ("servers with `check`. " if os.environ.get("BENCH_HAPROXY_CHECK") == "1"
           else "no health checks. ")
        + "nginx `stream`: round robin, no active checks (it has none). sluice: its TCP "
        "connect check every 5 s (it cannot be turned off).")
    cpu = (
        "CPU/req (process): user+system time of the balancer's whole process tree during the "
        "run divided by the requests served (for direct: the backend nginx's own). It misses "
        "what the kernel does for the balancer in softirq and kworkers, which is nearly all of "
        "the kernel relay's work. Machine CPU/req: the busy time of all CPUs from /proc/stat "
        "(user, nice, system, irq, softirq, steal) during the run divided by the requests "
        "served: the whole cost of a request, wrk and the backends included, so that the "
        "differences between rows are the balancers'; other work on the machine is in it too "
        "(see the others' CPU column).")
    return [method, "", cpu]


def main():
    work, out = sys.argv[1], sys.argv[2]
    runs, broken = {}, []
    for path in sorted(glob.glob(os.path.join(work, "wrk", "*.txt"))):
        m = re.fullmatch(r"(\d+)-(\w+)-(.+)-(\d+)\.txt", os.path.basename(path))
        if not m:
            broken.append(f"{path}: not named N-SCENARIO-TARGET-ROUND.txt")
            continue
        n, scenario, target, _ = m.groups()
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
    relays = read_relays(work)

    workers = sorted({k[0] for k in runs})
    scenarios = [sc for sc in SCENARIOS if any(k[1] == sc for k in runs)]
    present = {k[2] for k in runs}
    targets = [t for t in TARGETS if t in present] + sorted(present - set(TARGETS))
    sluices = [t for t in targets if t.startswith("sluice")]
    summary = {}
    for key, rs in runs.items():
        summary[key] = {
            "rps": median([r["rps"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "cpu_us_per_req": median([r["cpu_us_per_req"] for r in rs]),
            "machine_cpu_us_per_req": median([r["machine_cpu_us_per_req"] for r in rs]),
            "others_cpu_pct": median([r["others_cpu_pct"] for r in rs]),
            "rounds": len(rs),
        }

    def get(n, sc, target, field):
        return summary.get((n, sc, target), {}).get(field)

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
    ]
    md += [f"| {name(k)}: relay in its start-up line | {', '.join(v)} |"
           for k, v in sorted(relays.items(), key=lambda kv: TARGETS.index(kv[0])
                              if kv[0] in TARGETS else len(TARGETS))]
    md += [
        f"| HAProxy | {info['haproxy']} |",
        f"| nginx | {info['nginx']} |",
        f"| wrk | {info['wrk']} |",
        f"| load average (1, 5, 15 min) just before the run | {info['load_start']} |",
        "",
        *how(rounds, sluices),
        "",
        others_note(runs),
        "",
        "![requests per second per scenario and balancer](results.png)",
        "",
    ]

    md += ["## Ratios (each sluice relay divided by the other; req/s: higher is better for "
           "sluice, CPU/req: lower is better)", "",
           "| N | scenario | sluice | req/s vs HAProxy | req/s vs nginx | req/s vs direct "
           "| CPU/req vs HAProxy | CPU/req vs nginx | machine CPU/req vs HAProxy |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in workers:
        for sc in scenarios:
            for sl in sluices:
                if (n, sc, sl) not in summary:
                    continue
                md.append(f"| {n} | {LABELS.get(sc, sc)} | {name(sl)} | " + " | ".join([
                    ratio(get(n, sc, sl, "rps"), get(n, sc, "haproxy", "rps")),
                    ratio(get(n, sc, sl, "rps"), get(n, sc, "nginx", "rps")),
                    ratio(get(n, sc, sl, "rps"), get(n, sc, "direct", "rps")),
                    ratio(get(n, sc, sl, "cpu_us_per_req"),
                          get(n, sc, "haproxy", "cpu_us_per_req")),
                    ratio(get(n, sc, sl, "cpu_us_per_req"), get(n, sc, "nginx", "cpu_us_per_req")),
                    ratio(get(n, sc, sl, "machine_cpu_us_per_req"),
                          get(n, sc, "haproxy", "machine_cpu_us_per_req")),
                ]) + " |")
    md.append("")

    spliced = [(n, sc) for n in workers for sc in scenarios
               if (n, sc, "haproxy-splice") in summary]
    if spliced:
        md += ["## Against HAProxy with `option splice-response`", "",
               "Each balancer divided by HAProxy (splice) in the same scenario (req/s: higher "
               "is better for the balancer; CPU/req: lower is better).", "",
               "| N | scenario | balancer | req/s vs HAProxy (splice) "
               "| CPU/req vs HAProxy (splice) | machine CPU/req vs HAProxy (splice) |",
               "|---|---|---|---|---|---|"]
        for n, sc in spliced:
            for t in targets:
                if t in ("direct", "haproxy-splice") or (n, sc, t) not in summary:
                    continue
                md.append(f"| {n} | {LABELS.get(sc, sc)} | {name(t)} | " + " | ".join([
                    ratio(get(n, sc, t, "rps"), get(n, sc, "haproxy-splice", "rps")),
                    ratio(get(n, sc, t, "cpu_us_per_req"),
                          get(n, sc, "haproxy-splice", "cpu_us_per_req")),
                    ratio(get(n, sc, t, "machine_cpu_us_per_req"),
                          get(n, sc, "haproxy-splice", "machine_cpu_us_per_req")),
                ]) + " |")
        md.append("")

    md += ["## Throughput and latency", "",
           "| N | scenario | target | req/s | p50 ms | p99 ms | errors | CPU µs/req (process) "
           "| machine CPU µs/req | others' CPU % |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for n in workers:
        for sc in scenarios:
            for t in targets:
                s = summary.get((n, sc, t))
                if not s:
                    continue
                md.append(f"| {n} | {LABELS.get(sc, sc)} | {name(t)} | {fmt(s['rps'])} | "
                          f"{fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {s['errors']} | "
                          f"{fmt(s['cpu_us_per_req'], 1)} | {fmt(s['machine_cpu_us_per_req'], 1)} "
                          f"| {fmt(s['others_cpu_pct'])} |")
    md.append("")

    if held:
        md += ["## Held connections", "",
               "Each connection sends `GET / HTTP/1.1\\r\\nHost: x\\r\\n` without the final "
               "blank line and waits, so the balancer holds it open to a backend. Bytes per "
               "connection: growth of the resident memory (sum of VmRSS over the balancer's "
               "process tree; the kernel's socket buffers are not in it) divided by the "
               "connections held. With the kernel relay the held connection is already the BPF "
               "program's (the half request went through it; its sockmap entries are kernel "
               "memory, not in RSS); with auto it is still on the user relay, having carried no "
               "exchange yet. In every relay sluice keeps a thread per connection, waiting. "
               "Then every request is completed; "
               "errors are failed connects, early closes, resets, timeouts and non-200 replies. "
               "Each balancer is freshly started for this.", "",
               "| N | balancer | held | bytes/conn | RSS before → after | threads after "
               "| errors | open time s |", "|---|---|---|---|---|---|---|---|"]
        for h in held:
            kinds = ", ".join(f"{k} {v}" for k, v in h["error_kinds"].items())
            md.append(
                f"| {h['workers']} | {name(h['balancer'])} | {h['held']}/{h['count']} | "
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
                   "relays": relays,
                   "summary": [dict(workers=k[0], scenario=k[1], target=k[2], **v)
                               for k, v in sorted(summary.items())],
                   "runs": [dict(workers=k[0], scenario=k[1], target=k[2], **r)
                            for k, rs in sorted(runs.items()) for r in rs],
                   "held": held}, f, indent=1)

    chart(work, out, info, summary, workers, scenarios, targets)

    print("\n".join(md))
    if broken:
        print(f"report: {len(broken)} broken run(s)", file=sys.stderr)
        sys.exit(1)


def write_chart_data(path, summary, rows, targets, titled):
    """One gnuplot data file: a header of bar titles ("" for no key entry: a bar already in
    the key), then a line per cluster (N, scenario) with each target's req/s (0: not run)."""
    with open(path, "w") as f:
        f.write("cluster " + " ".join(f'"{name(t)}"' if t in titled else '""'
                                      for t in targets) + "\n")
        for n, sc in rows:
            vals = [summary.get((n, sc, t), {}).get("rps") or 0 for t in targets]
            f.write(f'"{SHORT.get(sc, sc)}\\nN={n}" ' + " ".join(f"{v:.0f}" for v in vals)
                    + "\n")


def chart(work, out, info, summary, workers, scenarios, targets):
    """results.png: req/s of the small-response scenarios on the left; on the right, on its
    own scale, the bulk scenario's (far fewer requests), HAProxy (splice) among them."""
    def ran(scs):
        return [t for t in targets if any((n, sc, t) in summary for n in workers for sc in scs)]

    small = [sc for sc in scenarios if sc != "bulk"]
    bulk = [sc for sc in scenarios if sc == "bulk"]
    small_targets, bulk_targets = ran(small), ran(bulk)
    small_data = os.path.join(work, "chart.dat")
    bulk_data = os.path.join(work, "chart-bulk.dat") if bulk else ""
    write_chart_data(small_data, summary, [(n, sc) for n in workers for sc in small],
                     small_targets, set(small_targets))
    if bulk:
        write_chart_data(bulk_data, summary, [(n, "bulk") for n in workers], bulk_targets,
                         set(bulk_targets) - set(small_targets))
    subtitle = (f"{info['cpu']}, {info['nproc']} CPUs shared by wrk, balancer and backends; "
                f"N = workers/threads per balancer; {info['date']}")
    settings = (f"data='{small_data}'; bulk='{bulk_data}'; "
                f"out='{os.path.join(out, 'results.png')}'; "
                f"clusters={len(workers) * len(small)}; bulkclusters={len(workers)}; "
                f"colors='{' '.join(COLORS.get(t, '#7f7f7f') for t in small_targets)}'; "
                f"bulkcolors='{' '.join(COLORS.get(t, '#7f7f7f') for t in bulk_targets)}'; "
                f"subtitle='{subtitle}'")
    subprocess.run(["gnuplot", "-e", settings,
                    os.path.join(os.path.dirname(__file__), "chart.gp")], check=True)


if __name__ == "__main__":
    main()
