"""Raw CSV log of the in-process samplers (nvml, rapl, ina3221).

Layout::

    # {"format": "edgeasr-energy-log", "version": 1, "backend": "rapl", ...metadata}
    t_wall_s,t_mono_s,energy_uj__package-0,energy_uj__dram
    1718000000.123456,12345.678901,123456789,4567890
    ...

Quantities (column prefix ``<quantity>__<RAIL>``): ``power_mw`` (instantaneous power),
``energy_mj`` (cumulative counter, NVML), ``energy_uj`` (raw wrapping counter, RAPL; its
range is in the metadata as ``max_energy_range_uj``: {rail: range}).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import pandas as pd

from .errors import EnergyError, EnergyWarning

MAGIC = "edgeasr-energy-log"


class CsvLogWriter:
    def __init__(self, path: Path, backend: str, columns: list[str], **meta):
        self.path = Path(path)
        self.columns = list(columns)
        self._f = open(self.path, "w", buffering=1)
        head = {"format": MAGIC, "version": 1, "backend": backend}
        head.update(meta)
        self._f.write("# " + json.dumps(head) + "\n")
        self._f.write(",".join(["t_wall_s", "t_mono_s"] + self.columns) + "\n")
        self._f.flush()

    def write(self, t_wall: float, t_mono: float, values) -> None:
        vals = ["" if v is None else repr(float(v)) if isinstance(v, float) else str(v) for v in values]
        self._f.write(f"{t_wall:.6f},{t_mono:.6f}," + ",".join(vals) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            try:
                os.fsync(self._f.fileno())
            except OSError:
                pass
            self._f.close()


def is_csv_log(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(64).startswith(b"# {") and MAGIC.encode() in Path(path).read_bytes()[:4096]
    except OSError:
        return False


def read_csv_log(path) -> tuple[dict, pd.DataFrame]:
    """(metadata, samples) of a raw CSV log; a truncated last row is dropped with a warning."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise EnergyError(f"energy log {path} does not exist") from None
    if not text.strip():
        raise EnergyError(f"energy log {path} is empty: the sampler wrote nothing")
    lines = text.split("\n")
    if not lines[0].startswith("# "):
        raise EnergyError(f"energy log {path}: line 1 is not the edgeasr-energy-log header")
    try:
        meta = json.loads(lines[0][2:])
    except ValueError:
        raise EnergyError(f"energy log {path}: line 1: unreadable header") from None
    if meta.get("format") != MAGIC:
        raise EnergyError(f"energy log {path}: line 1: not an {MAGIC}")
    if len(lines) < 2 or not lines[1].strip():
        raise EnergyError(f"energy log {path}: line 2: no column header")
    header = lines[1].split(",")
    body = lines[2:]
    if body and body[-1] == "":
        body = body[:-1]
    elif body:
        warnings.warn(f"{path}: line {len(lines)}: truncated last row ignored", EnergyWarning, stacklevel=2)
        body = body[:-1]
    good = []
    for k, row in enumerate(body):
        no = k + 3
        parts = row.split(",")
        if len(parts) != len(header):
            warnings.warn(
                f"{path}: line {no}: {len(parts)} fields instead of {len(header)}, skipped", EnergyWarning, stacklevel=2
            )
            continue
        good.append((no, row))
    if not good:
        raise EnergyError(f"energy log {path} holds no sample rows")
    df = pd.read_csv(io.StringIO("\n".join([",".join(header)] + [r for _, r in good])), dtype=float)
    df.insert(0, "line_no", [no for no, _ in good])
    return meta, df
