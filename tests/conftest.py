"""Shared fixtures. The offline mirror of the study's test set lives in ../shared (CI has it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEASR_SHARED", ROOT.parent / "shared"))
MIRROR = SHARED / "mirror" / "openslr-31" / "dev-clean-2-3752-4944.tar.gz"
MIRROR_SHA256 = "d620ff975c2d8e0c47b6463deb79316c00ceb2e79aea95a91a6bdc28d07f9614"
PAPER_NOISY = SHARED / "mirror" / "paper-noisy-amp0.1-3752-4944.tar.gz"
TEGRASTATS_FORMATS = SHARED / "fixtures" / "tegrastats" / "formats.txt"


def _need(path: Path) -> Path:
    if not path.exists():
        msg = f"{path} is missing: tests need ../shared beside the checkout (set EDGEASR_SHARED to move it)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI a missing fixture is an error, never a skip
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def mirror_archive() -> Path:
    return _need(MIRROR)


@pytest.fixture(scope="session")
def librispeech_dir(tmp_path_factory, mirror_archive) -> Path:
    """The study's 70 utterances, extracted once per session (real LibriSpeech audio)."""
    d = tmp_path_factory.mktemp("librispeech")
    with tarfile.open(mirror_archive) as tf:
        tf.extractall(d, filter="data")
    return d / "LibriSpeech" / "dev-clean-2" / "3752" / "4944"


@pytest.fixture(scope="session")
def paper_noisy_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("paper_noisy")
    with tarfile.open(_need(PAPER_NOISY)) as tf:
        tf.extractall(d, filter="data")
    return next(p.parent for p in d.rglob("*.flac"))


@pytest.fixture(scope="session")
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def mirror_config(max_utterances=None, **overrides) -> dict:
    """A config for workflow tests: the default one pointed at the offline mirror."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["dataset"]["sources"] = [{"url": str(_need(MIRROR)), "checksum": f"sha256:{MIRROR_SHA256}"}]
    cfg["dataset"]["subset"]["max_utterances"] = max_utterances
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def snakemake_cmd(workdir: Path, config: dict, *args) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "test-config.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        shutil.which("snakemake") or "snakemake",
        *args,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg_path),
    ]


try:  # looked up before any fork: the child must not import after fork in a threaded process
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, even by SIGKILL (Linux only)."""
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process_group(proc: subprocess.Popen, grace_s: float = 60) -> tuple[str, str]:
    """Stop ``proc`` and every process it started (its own session): SIGTERM, then SIGKILL after ``grace_s``.

    SIGTERM first so that Snakemake cancels what it submitted (scancel for Slurm jobs) before it exits. The
    group is signalled even when Snakemake itself has already exited (its jobs may not have). The pipes are
    drained meanwhile; returns what was left in them.
    """
    out, err = "", ""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            o, e = proc.communicate(timeout=wait_s)
            return out + (o or ""), err + (e or "")
        except subprocess.TimeoutExpired as t:
            out, err = out + _text(t.stdout), err + _text(t.stderr)
        except ValueError:  # the pipes were already read to the end
            proc.wait(timeout=wait_s)
            return out, err
    return out, err


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def run_snakemake(
    workdir: Path, config: dict, *args, check=True, timeout=1800, env=None
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with ``config`` (written to workdir/config.yaml).

    Snakemake runs in a session of its own that is stopped as a whole when the test times out or is
    interrupted, and it gets SIGTERM if the test process itself is killed: no Snakemake (or job it
    started) outlives the test.
    """
    cmd = snakemake_cmd(workdir, config, *args)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent if _PRCTL is not None else None,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = stop_process_group(proc)
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err) from None
    except BaseException:  # Ctrl-C, a failing fixture: the whole group goes
        stop_process_group(proc)
        raise
    stop_process_group(proc, grace_s=5)  # a job Snakemake left behind (it exited, its group may not have)
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}")
    return p


def dry_run_jobs(workdir: Path, config: dict, *targets) -> dict[str, int]:
    """Job counts per rule of a dry run (what a config change would schedule)."""
    p = run_snakemake(workdir, config, *targets, "-n", "--cores", "1", "--quiet", "rules")
    counts: dict[str, int] = {}
    text = p.stdout + p.stderr
    started = False
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "job" and parts[1] == "count":
            started = True
            continue
        if started:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            elif parts and set(parts[0]) <= {"-"}:
                continue
    return counts
