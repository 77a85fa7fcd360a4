#!/usr/bin/python3
"""CPU time and resident memory of a process and all its descendants, from /proc.

    proc.py cpu PID   -> CPU time in clock ticks: utime+stime of every live process of the
                         tree, plus cutime+cstime (children already reaped) of each
    proc.py rss PID   -> bytes: sum of VmRSS of every process of the tree
    proc.py threads PID -> number of threads in the tree
    proc.py others PID -> CPU ticks of every user process outside the tree (the same sum;
                         a process reaped meanwhile counts in its parent's cutime): how much
                         other work on the machine competed with the benchmark

Memory shared between processes of one tree (e.g. a shared segment) is counted once per
process; compare deltas, not absolute values.
"""
import os
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def tree(root):
    """root and its live descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    result, todo = [], [int(root)]
    while todo:
        pid = todo.pop()
        result.append(pid)
        todo.extend(children.get(pid, []))
    return result


def _ticks(pids):
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        # fields after the name, counted from 0 = state: utime=11 stime=12 cutime=13 cstime=14
        total += sum(int(x) for x in f[11:15])
    return total


def cpu_ticks(root):
    return _ticks(tree(root))


def others_ticks(root):
    mine = set(tree(root))
    user = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in mine or name == "2":
            continue
        try:
            if _stat_fields(name)[1] != "2":  # not a kernel thread
                user.append(name)
        except (OSError, IndexError):
            pass
    return _ticks(user)


def _status_value(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(root):
    return sum(_status_value(pid, "VmRSS") for pid in tree(root)) * 1024


def threads(root):
    return sum(_status_value(pid, "Threads") for pid in tree(root))


if __name__ == "__main__":
    what, pid = sys.argv[1], int(sys.argv[2])
    print({"cpu": cpu_ticks, "rss": rss_bytes, "threads": threads,
           "others": others_ticks}[what](pid))
