"""tegrastats parsing: every known format, damaged logs, sub-second timestamps."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from edgeasr.energy import EnergyError, EnergyWarning, fit_line_times, parse_tegrastats, parse_tegrastats_line

SHARED = (
    Path(os.environ.get("EDGEASR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "fixtures"
    / "tegrastats"
    / "formats.txt"
)

# One line per known format (copied from formats.txt, so the tests run anywhere).
FORMATS = {
    "orin-nano-jp5": "01-24-2024 09:17:09 RAM 3503/7337MB (lfb 7x1MB) SWAP 430/3668MB (cached 1MB) CPU [11%@729,13%@729,9%@729,18%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@305 GR3D2_FREQ 0%@0 VIC_FREQ 115 APE 174 CV0@42.718C CPU@44.093C SOC2@42.625C SOC0@43.281C CV1@42.25C GPU@41.343C tj@46.968C SOC1@46.968C CV2@42.875C VDD_IN 4915mW/4915mW VDD_CPU_GPU_CV 449mW/449mW VDD_SOC 1431mW/1431mW",
    "orin-nano-jp6": "09-21-2025 15:38:17 RAM 3645/7620MB (lfb 63x4MB) SWAP 236/3810MB (cached 0MB) CPU [1%@729,1%@729,4%@729,1%@729,0%@729,0%@729] EMC_FREQ 0%@204 GR3D_FREQ 0%@[305] NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@44.125C soc2@43.375C soc0@42.125C gpu@44.531C tj@44.531C soc1@43.156C VDD_IN 2957mW/2957mW VDD_CPU_GPU_CV 486mW/486mW VDD_SOC 1012mW/1012mW",
    "orin-nano-jp6-nosudo": "06-18-2025 11:25:24 RAM 3452/7620MB (lfb 25x4MB) SWAP 1518/16384MB (cached 174MB) CPU [1%@1420,2%@1420,0%@1420,2%@1420,2%@729,1%@729] GR3D_FREQ 0% cpu@50.031C soc2@49.031C soc0@50C gpu@49.031C tj@50.25C soc1@50.25C VDD_IN 4824mW/4824mW VDD_CPU_GPU_CV 518mW/518mW VDD_SOC 1475mW/1475mW",
    "orin-nx-jp6-load": "VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW VDD_SOC 3923mW/3515mW",
    "agx-orin-jp7": "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201,4%@2201,14%@2201,30%@2201,18%@2201,10%@2201,10%@2201,33%@2201,7%@2201,5%@2201,27%@2201] EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off NVDEC0 off NVJPG0 off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@52.968C/52.968C soc2@48.406C/48.406C soc0@49.531C/49.531C gpu@47.625C/47.625C VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW",
    "thor": "RAM 4722/7844MB (lfb 1x512kB) EMC_FREQ 2%@1866 GR3D_FREQ @[1000,1000,1000] APE 150",
    "tx2-jp4": "RAM 707/7854MB (lfb 1659x4MB) CPU [12%@345,3%@345,0%@345,7%@345,0%@345,1%@345] BCPU@30C MCPU@30C GPU@28.5C PLL@30C Tboard@26C Tdiode@27.5C PMIC@100C thermal@29.4C VDD_IN 1038/1134 VDD_CPU 153/153 VDD_GPU 153/153 VDD_SOC 384/384 VDD_WIFI 38/124 VDD_DDR 192/192",
    "xavier": "RAM 407/15823MB (lfb 3702x4MB) SWAP 0/7911MB (cached 0MB) CPU [5%@2265,1%@2265,0%@2265,3%@2265,0%@2265,0%@2265,2%@2265,0%@2265] EMC_FREQ 0% GR3D_FREQ 37% AO@26.5C GPU@28C iwlwifi@30C Tdiode@31.25C PMIC@100C AUX@26.5C CPU@27.5C thermal@27.45C Tboard@27C GPU 1155/1155 CPU 385/385 SOC 2504/2503 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692",
}

# label: (date, {rail: current mW} exactly, ram used, ram total, gpu load)
EXPECTED = {
    "orin-nano-jp5": ("01-24-2024 09:17:09", {"VDD_IN": 4915, "VDD_CPU_GPU_CV": 449, "VDD_SOC": 1431}, 3503, 7337, 0.0),
    "orin-nano-jp6": ("09-21-2025 15:38:17", {"VDD_IN": 2957, "VDD_CPU_GPU_CV": 486, "VDD_SOC": 1012}, 3645, 7620, 0.0),
    "orin-nano-jp6-nosudo": (
        "06-18-2025 11:25:24",
        {"VDD_IN": 4824, "VDD_CPU_GPU_CV": 518, "VDD_SOC": 1475},
        3452,
        7620,
        0.0,
    ),
    "orin-nx-jp6-load": (None, {"VDD_IN": 17946, "VDD_CPU_GPU_CV": 8896, "VDD_SOC": 3923}, None, None, None),
    "agx-orin-jp7": (
        "07-25-2026 09:08:28",
        {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500},
        20642,
        62817,
        12.0,
    ),
    "thor": (None, {}, 4722, 7844, None),
    "tx2-jp4": (
        None,
        {"VDD_IN": 1038, "VDD_CPU": 153, "VDD_GPU": 153, "VDD_SOC": 384, "VDD_WIFI": 38, "VDD_DDR": 192},
        707,
        7854,
        None,
    ),
    "xavier": (None, {"GPU": 1155, "CPU": 385, "SOC": 2504, "CV": 0, "VDDRQ": 192, "SYS5V": 2692}, 407, 15823, 37.0),
}


def _shared_formats():
    if not SHARED.exists():
        msg = f"{SHARED} is missing (set EDGEASR_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI a missing fixture is an error, never a skip
        pytest.skip(msg)
    out, label = {}, None
    for line in SHARED.read_text().splitlines():
        if line.startswith("# ["):
            label = line[3 : line.index("]")]
        elif line.strip() and not line.startswith("#"):
            out[label] = line
    return out


def test_shared_fixture_file_matches_embedded_lines():
    shared = _shared_formats()
    assert set(shared) == set(FORMATS)
    for k, line in shared.items():
        assert line == FORMATS[k], k


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_every_format_parses_to_the_right_rails(label):
    date, rails, used, total, load = EXPECTED[label]
    r = parse_tegrastats_line(FORMATS[label])
    assert r["date"] == date
    assert r["power_mw"] == {k: float(v) for k, v in rails.items()}  # no extra "rail"
    assert r["ram_used_mb"] == (None if used is None else float(used))
    assert r["ram_total_mb"] == (None if total is None else float(total))
    assert r["gpu_load_pct"] == load
    assert r["ok"]


def test_shared_file_every_line():
    for label, line in _shared_formats().items():
        assert parse_tegrastats_line(line)["power_mw"] == {k: float(v) for k, v in EXPECTED[label][1].items()}, label


def test_first_number_is_the_current_draw():
    r = parse_tegrastats_line(FORMATS["orin-nx-jp6-load"])
    assert r["power_mw"]["VDD_IN"] == 17946 and r["power_avg_mw"]["VDD_IN"] == 15710
    # three numbers (JetPack 7): current/average/max, all different here
    r = parse_tegrastats_line(
        "07-25-2026 09:08:28 RAM 1/2MB VDD_GPU_SOC 5139mW/4000mW/6100mW VIN_SYS_5V0 900mW/800mW/1000mW"
    )
    assert r["power_mw"] == {"VDD_GPU_SOC": 5139.0, "VIN_SYS_5V0": 900.0}
    assert r["power_avg_mw"]["VDD_GPU_SOC"] == 4000.0
    assert r["power_max_mw"]["VDD_GPU_SOC"] == 6100.0


def test_not_rails_cpu_array_temps_memory():
    r = parse_tegrastats_line(FORMATS["xavier"])
    assert "RAM" not in r["power_mw"] and "SWAP" not in r["power_mw"]
    assert r["power_mw"]["CPU"] == 385.0  # Xavier's CPU rail, not the load array
    assert r["power_mw"]["GPU"] == 1155.0  # not GPU@28C
    assert r["temps_c"]["GPU"] == 28.0
    r = parse_tegrastats_line(FORMATS["tx2-jp4"])
    assert "CPU" not in r["power_mw"]  # CPU [..] is the load array
    r = parse_tegrastats_line(FORMATS["agx-orin-jp7"])
    assert not any(k.lower().startswith(("cpu", "gpu", "soc")) for k in r["power_mw"])


def test_lower_case_rails_and_gr3d_forms():
    r = parse_tegrastats_line("vdd_in 1200mw/1100mw vdd_soc 300/300 gr3d_freq 55%@[1300]")
    assert r["power_mw"] == {"VDD_IN": 1200.0, "VDD_SOC": 300.0}
    assert r["gpu_load_pct"] == 55.0
    assert parse_tegrastats_line("RAM 1/2MB GR3D_FREQ 99%@1300")["gpu_load_pct"] == 99.0
    assert parse_tegrastats_line("RAM 1/2MB")["gpu_load_pct"] is None


def _write(p: Path, lines, end="\n"):
    p.write_text("\n".join(lines) + end)
    return p


def test_log_without_dates_uses_the_interval(tmp_path):
    p = _write(tmp_path / "log", [FORMATS["tx2-jp4"]] * 5)
    df = parse_tegrastats(p, interval_ms=200)
    assert list(df["line_no"]) == [1, 2, 3, 4, 5]
    assert np.allclose(np.diff(df["t_s"]), 0.2)
    assert (df["power_mw__VDD_IN"] == 1038).all()
    assert (df["ram_used_mb"] == 707).all()
    with pytest.raises(EnergyError, match="interval_ms"):
        parse_tegrastats(p)


def test_log_without_dates_between_start_and_stop_markers(tmp_path):
    p = _write(tmp_path / "log", [FORMATS["orin-nx-jp6-load"]] * 10)
    df = parse_tegrastats(p, interval_ms=100, start_wall_s=1000.0, stop_wall_s=1001.0)
    assert df.attrs["timing"] == "markers"
    assert df["t_s"].iloc[0] == pytest.approx(1000.05)
    assert df["t_s"].iloc[-1] == pytest.approx(1000.95)


def test_garbled_line_warns_with_line_number(tmp_path):
    good = FORMATS["orin-nano-jp6"]
    p = _write(
        tmp_path / "log", [good, good, "\x00\x00@@ garbage ###", good, good.replace("VDD_IN 2957mW", "VDD_IN 29#7mW")]
    )
    with pytest.warns(EnergyWarning) as rec:
        df = parse_tegrastats(p, interval_ms=100)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "line 3:" in msgs and "garbled" in msgs
    assert "line 5:" in msgs and "VDD_IN" in msgs
    assert list(df["line_no"]) == [1, 2, 4, 5]
    assert np.isnan(df["power_mw__VDD_IN"].iloc[-1])
    assert df["power_mw__VDD_SOC"].iloc[-1] == 1012.0


def test_truncated_last_line_warns_and_is_dropped(tmp_path):
    good = FORMATS["orin-nano-jp6"]
    p = tmp_path / "log"
    p.write_text(good + "\n" + good + "\n" + good[:120])
    with pytest.warns(EnergyWarning, match=r"line 3: truncated"):
        df = parse_tegrastats(p, interval_ms=100)
    assert len(df) == 2


def test_empty_log_is_a_clear_error(tmp_path):
    p = tmp_path / "empty.log"
    p.write_text("")
    with pytest.raises(EnergyError, match="empty.log.*empty"):
        parse_tegrastats(p, interval_ms=100)
    with pytest.raises(EnergyError, match="does not exist"):
        parse_tegrastats(tmp_path / "missing.log", interval_ms=100)
    p.write_text("garbage\nmore garbage\n")
    with pytest.warns(EnergyWarning), pytest.raises(EnergyError, match="no line could be parsed"):
        parse_tegrastats(p, interval_ms=100)


def _dated_log(tmp_path, times, power_mw=5000):
    lines = []
    for t in times:
        d = time.strftime("%m-%d-%Y %H:%M:%S", time.gmtime(t))
        lines.append(f"{d} RAM 1/2MB GR3D_FREQ 0%@[305] VDD_IN {power_mw}mW/{power_mw}mW")
    return _write(tmp_path / "log", lines)


def test_dates_give_sub_second_times(tmp_path):
    # a logger at 100 ms with 0.3 % drift: dates have 1 s resolution, fitted times must be
    # within half an interval (+ jitter slack) of the truth, which "date + 0.5" is not
    t = 1.7e9 + 0.437 + 0.1003 * np.arange(300)
    p = _dated_log(tmp_path, t)
    df = parse_tegrastats(p, interval_ms=100, utc_offset_s=0)
    err = np.abs(df["t_s"].to_numpy() - t)
    assert err.max() < 0.07
    naive = np.floor(t) + 0.5
    assert np.abs(naive - t).max() > 0.4


def test_utc_offset_inferred_from_start_marker(tmp_path):
    t = 1.7e9 + 0.2 + 0.25 * np.arange(40)
    lines = []
    for x in t:  # dates printed in a UTC+02:00 zone
        d = time.strftime("%m-%d-%Y %H:%M:%S", time.gmtime(x + 7200))
        lines.append(f"{d} RAM 1/2MB VDD_IN 1000mW/1000mW")
    p = _write(tmp_path / "log", lines)
    df = parse_tegrastats(p, interval_ms=250, start_wall_s=t[0] - 0.05)
    assert df.attrs["utc_offset_s"] == 7200
    assert np.abs(df["t_s"].to_numpy() - t).max() < 0.15


def test_fit_handles_a_stall_by_segments():
    t = 1e9 + 0.37 + 0.1 * np.arange(400)
    t[200:] += 0.73  # the logger stalled 730 ms
    f, nseg = fit_line_times(np.arange(400), np.floor(t), 0.1)
    assert nseg == 2
    assert np.abs(f - t).max() < 0.08


def test_one_second_interval_stays_within_its_dates():
    t = 1e9 + 0.6 + 1.0 * np.arange(20)
    f, nseg = fit_line_times(np.arange(20), np.floor(t), 1.0)
    assert nseg == 1 and np.all(f >= np.floor(t) - 0.021) and np.all(f <= np.floor(t) + 1.021)
