"""Watchdog of a logger process (tegrastats); standalone (standard library only).

Started by the meter with a pipe on its stdin, in its own session. It reads lines
(``pgid N``) until end-of-file; the pipe reaches end-of-file when the meter closes it
OR when the meter's process dies in any way, SIGKILL included. It then stops every
process whose command line carries ``--logfile <LOGFILE>`` (SIGTERM, the stop command
when given, then SIGKILL) and exits. It ignores SIGINT/SIGHUP (a Ctrl-C of the terminal
is the meter's business) and treats SIGTERM as end-of-file.

    python _watchdog.py LOGFILE OWNER_PID ['["sudo","-n","tegrastats","--stop"]']

It also polls the owner's liveness (pid and start time) every 0.5 s, because a child
forked by the owner (multiprocessing) inherits the pipe and may keep it open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def _args(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def has_logfile_arg(args, logfile: str) -> bool:
    for i, a in enumerate(args):
        if a == "--logfile" and i + 1 < len(args) and args[i + 1] == logfile:
            return True
        if a == "--logfile=" + logfile:
            return True
    return False


def logger_pids(logfile: str, exclude=()) -> list[int]:
    """Live (non-zombie) processes whose command line has ``--logfile LOGFILE``."""
    out = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me or pid in exclude:
            continue
        args = _args(pid)
        if args and has_logfile_arg(args, logfile) and not _zombie(pid):
            out.append(pid)
    return out


def _kill(pids, sig, pgid=None):
    groups = set()
    for pid in pids:
        try:
            g = os.getpgid(pid)
            if pgid is not None and g == pgid:
                groups.add(g)
        except OSError:
            pass
    for g in groups:
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def stop_loggers(logfile: str, pgid=None, stop_cmd=None, grace_s: float = 2.0, exclude=()) -> list[int]:
    """Stop every logger writing LOGFILE; returns the pids that survived."""
    pids = logger_pids(logfile, exclude)
    if not pids:
        return []
    _kill(pids, signal.SIGTERM, pgid)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pids:
        time.sleep(0.02)
        pids = logger_pids(logfile, exclude)
    if pids and stop_cmd:
        try:
            subprocess.run(
                stop_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10
            )
        except Exception:
            pass
        pids = logger_pids(logfile, exclude)
    if pids:
        _kill(pids, signal.SIGKILL, pgid)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and pids:
            time.sleep(0.02)
            pids = logger_pids(logfile, exclude)
    return pids


def _starttime(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def main(argv: list[str]) -> int:
    import select

    logfile = argv[1]
    owner = int(argv[2])
    stop_cmd = json.loads(argv[3]) if len(argv) > 3 and argv[3] else None
    owner_start = _starttime(owner)
    pgid = [None]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def finish(*_):
        stop_loggers(logfile, pgid[0], stop_cmd, exclude=(owner,))
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    fd = sys.stdin.fileno()
    buf = b""
    while True:
        # end-of-file on the pipe, or the owner gone (a forked child of the owner may hold
        # the pipe open after the owner died, so its liveness is polled too)
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
        except InterruptedError:
            continue
        except OSError:
            break
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.split()
                if len(parts) == 2 and parts[0] == b"pgid":
                    pgid[0] = int(parts[1])
        elif owner_start is not None and _starttime(owner) != owner_start:
            break
    finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
