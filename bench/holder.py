#!/usr/bin/python3
"""Held connections: the memory a balancer spends per idle client connection.

Measures the resident memory of the balancer's process tree (--pid), opens --count
connections to 127.0.0.1:--port, sends each a request without its final blank line (so the
backend waits for more and nothing is answered), waits for the balancer's memory to settle,
measures again, then completes every request and checks that each gets a 200 reply.
Prints one JSON object. Standard library only.
"""
import argparse
import errno
import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proc  # noqa: E402

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
TAIL = b"Connection: close\r\n\r\n"


def open_batch(port, n, timeout, errors):
    """Connects n sockets at once, sends HEAD on each; returns those that worked."""
    sel = selectors.DefaultSelector()
    pending = 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            errors["connect"] += 1
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE)
        pending += 1
    done = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                errors["connect"] += 1
                s.close()
                continue
            try:
                s.send(HEAD)  # tiny: fits in any socket buffer
            except OSError:
                errors["send"] += 1
                s.close()
                continue
            done.append(s)
    for key in list(sel.get_map().values()):  # never connected in time
        errors["connect"] += 1
        key.fileobj.close()
    sel.close()
    return done


def settle(pid, max_wait):
    """Waits until the tree's RSS stops moving (two samples 0.5 s apart within 0.5%)."""
    start = time.monotonic()
    last = proc.rss_bytes(pid)
    while time.monotonic() - start < max_wait:
        time.sleep(0.5)
        now = proc.rss_bytes(pid)
        if time.monotonic() - start >= 1.0 and abs(now - last) <= 0.005 * max(last, 1):
            return now, time.monotonic() - start
        last = now
    return last, time.monotonic() - start


def check_idle(socks, errors):
    """A held connection must not have been answered or closed yet."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    early = {key.fileobj for key, _ in sel.select(timeout=0)}
    sel.close()
    errors["early_close"] += len(early)
    for s in early:
        s.close()
    return [s for s in socks if s not in early]


def complete(socks, timeout, errors):
    """Sends the last lines of each request; reads each reply to EOF; counts non-200s."""
    sel = selectors.DefaultSelector()
    replies = {}
    for s in socks:
        try:
            s.send(TAIL)
        except OSError:
            errors["send"] += 1
            s.close()
            continue
        replies[s] = bytearray()
        sel.register(s, selectors.EVENT_READ)
    ok = 0
    deadline = time.monotonic() + timeout
    while replies and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:  # reset
                data = None
            if data:
                replies[s] += data
                continue
            reply = bytes(replies.pop(s))
            sel.unregister(s)
            s.close()
            if data is None:
                errors["reset"] += 1
            elif reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok"):
                ok += 1
            else:
                errors["bad_reply"] += 1
    errors["timeout"] += len(replies)
    for s in replies:
        s.close()
    sel.close()
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the balancer's root process")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--settle-max", type=float, default=15.0)
    ap.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                    help="copied into the JSON output")
    args = ap.parse_args()

    errors = {k: 0 for k in ("connect", "send", "early_close", "reset", "bad_reply", "timeout")}
    time.sleep(0.5)
    rss_before = proc.rss_bytes(args.pid)
    threads_before = proc.threads(args.pid)

    t0 = time.monotonic()
    socks = []
    while len(socks) + errors["connect"] + errors["send"] < args.count:
        n = min(args.batch, args.count - len(socks) - errors["connect"] - errors["send"])
        socks += open_batch(args.port, n, 10.0, errors)
    open_seconds = time.monotonic() - t0

    rss_after, settle_seconds = settle(args.pid, args.settle_max)
    threads_after = proc.threads(args.pid)
    socks = check_idle(socks, errors)
    held = len(socks)

    t1 = time.monotonic()
    ok = complete(socks, 60.0, errors)
    result = dict(kv.split("=", 1) for kv in args.label)
    result.update(
        count=args.count, held=held, completed_ok=ok, errors=sum(errors.values()),
        error_kinds={k: v for k, v in errors.items() if v},
        rss_before=rss_before, rss_after=rss_after,
        bytes_per_conn=round((rss_after - rss_before) / held) if held else None,
        threads_before=threads_before, threads_after=threads_after,
        open_seconds=round(open_seconds, 2), settle_seconds=round(settle_seconds, 2),
        complete_seconds=round(time.monotonic() - t1, 2),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
