"""Markers: JSON lines the meter writes so that a separate step can cut the power log.

Every marker has ``event``, ``wall_s`` (time.time()) and ``mono_s`` (time.monotonic()).
Events: ``meter_start`` (backend, interval_ms, idle_s, log_path, utc_offset_s, pid),
``logger_start``, ``logger_ready`` (first sample seen), ``idle_begin``, ``idle_end``,
``window_begin`` / ``window_end`` (``name``), ``signal`` (``signum``), ``logger_stop``,
``meter_exit`` (``status``: ok, exception, interrupted, signal, error; ``orphans``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .errors import EnergyError

__all__ = ["write_marker", "read_markers", "find_windows", "find_idle"]


def write_marker(path: Path, event: str, **fields) -> dict:
    """Append one marker; the file is opened per marker, so a marker written from a signal
    handler never re-enters a half-finished write."""
    rec = {"event": event, "wall_s": time.time(), "mono_s": time.monotonic()}
    rec.update(fields)
    line = json.dumps(rec, default=str) + "\n"
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return rec


def read_markers(path) -> list[dict]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise EnergyError(f"markers file {path} does not exist") from None
    out = []
    lines = text.split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "event" not in rec:
                raise ValueError("no event")
        except ValueError as e:
            if no == len(lines):  # the last line of a killed job may be truncated
                import warnings

                from .errors import EnergyWarning

                warnings.warn(f"{path}: line {no}: truncated marker ignored", EnergyWarning, stacklevel=2)
                continue
            raise EnergyError(f"markers file {path}: line {no} is not a marker: {e}") from None
        rec["_line"] = no
        out.append(rec)
    return out


def find_windows(markers: list[dict], path="markers") -> dict[str, list[tuple[dict, dict]]]:
    """{name: [(begin, end), ...]} in order; raises for a window that was never ended."""
    open_: dict[str, dict] = {}
    out: dict[str, list[tuple[dict, dict]]] = {}
    for m in markers:
        if m["event"] == "window_begin":
            name = m.get("name", "")
            if name in open_:
                raise EnergyError(
                    f"{path}: line {m['_line']}: window {name!r} begun again "
                    f"before it ended (line {open_[name]['_line']})"
                )
            open_[name] = m
        elif m["event"] == "window_end":
            name = m.get("name", "")
            if name not in open_:
                raise EnergyError(f"{path}: line {m['_line']}: window {name!r} ended but never begun")
            out.setdefault(name, []).append((open_.pop(name), m))
    for name, m in open_.items():
        raise EnergyError(
            f"{path}: line {m['_line']}: window {name!r} was begun but never ended (the job was interrupted?)"
        )
    return out


def find_idle(markers: list[dict]) -> tuple[dict, dict] | None:
    b = next((m for m in markers if m["event"] == "idle_begin"), None)
    e = next((m for m in markers if m["event"] == "idle_end"), None)
    if b is None or e is None:
        return None
    return b, e


def first(markers: list[dict], event: str) -> dict | None:
    return next((m for m in markers if m["event"] == event), None)
