"""Dataset download: streaming, checksummed, with safe archive extraction.

Sources are tried in order (``dataset.sources`` in the config). A checksum mismatch deletes
the partial file and names both sums; an unreachable URL says how to point the config at a
mirror or at an already-extracted folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SUPPORTED_ALGOS = ("md5", "sha256", "sha1", "sha512")
NO_CHECKSUM = "none"  # the explicit opt-out of verification (config: checksum: none), logged loudly
#: Limits on what one archive may unpack to (decompression bombs); dataset.max_extract_* in the config.
MAX_EXTRACT_BYTES = 64 << 30
MAX_EXTRACT_MEMBERS = 1_000_000


class DownloadError(RuntimeError):
    """A download, checksum or extraction problem, with a message saying how to fix it."""


@dataclass(frozen=True)
class Checksum:
    algo: str
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> "Checksum":
        """Parse ``"md5:<hex>"`` / ``"sha256:<hex>"`` (the algorithm prefix is required)."""
        if not isinstance(text, str) or ":" not in text:
            raise DownloadError(
                f"checksum {text!r} must look like 'md5:<hex>' or 'sha256:<hex>' "
                f"(algorithms: {', '.join(SUPPORTED_ALGOS)})"
            )
        algo, hexd = text.split(":", 1)
        algo = algo.strip().lower()
        hexd = hexd.strip().lower()
        if algo not in SUPPORTED_ALGOS:
            raise DownloadError(f"checksum algorithm {algo!r} unknown; use one of {', '.join(SUPPORTED_ALGOS)}")
        expected_len = hashlib.new(algo).digest_size * 2
        if len(hexd) != expected_len or any(c not in "0123456789abcdef" for c in hexd):
            raise DownloadError(f"checksum {text!r}: a {algo} digest is {expected_len} hex digits")
        return cls(algo, hexd)

    def __str__(self) -> str:
        return f"{self.algo}:{self.hexdigest}"


def file_digest(path: str | os.PathLike, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class _Progress:
    """Progress lines for a log file (a bar every 10 %, or every 8 MiB when size is unknown)."""

    def __init__(self, url: str, total: int | None, stream):
        self.url, self.total, self.stream = url, total, stream
        self.done = 0
        self.next_mark = 0.0
        self.t0 = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        frac = self.done / self.total if self.total else None
        if frac is not None and frac + 1e-9 < self.next_mark and self.done != self.total:
            return
        if frac is None and self.done < self.next_mark:
            return
        rate = self.done / max(time.monotonic() - self.t0, 1e-6) / 1e6
        if frac is not None:
            bar = "#" * int(frac * 30)
            self.stream.write(f"[{bar:<30}] {frac * 100:5.1f}% {self.done / 1e6:8.1f} MB {rate:6.1f} MB/s\n")
            self.next_mark = min(1.0, int(frac * 10 + 1) / 10)
        else:
            self.stream.write(f"{self.done / 1e6:8.1f} MB {rate:6.1f} MB/s\n")
            self.next_mark = self.done + 8 * CHUNK
        self.stream.flush()


def normalise_url(url: str) -> str:
    """A URL as given, or a local path (absolute or relative to the working directory) as a file:// URL."""
    if "://" in url:
        return url
    return Path(url).expanduser().resolve().as_uri()


def _open_url(url: str, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "edgeasr/0.1 (+snakemake workflow)"})
    return urllib.request.urlopen(req, timeout=timeout)


def download(
    url: str, dest: str | os.PathLike, checksum: str | None, *, timeout: float = 60.0, progress_stream=None
) -> Path:
    """Stream ``url`` to ``dest``, verify ``checksum`` and only then move it into place.

    ``file://`` URLs work (an offline mirror is one config value). On any failure the partial file
    is removed and ``dest`` does not exist.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stream = progress_stream
    if stream is None:
        import sys

        stream = sys.stderr
    if not checksum or str(checksum).strip().lower() == NO_CHECKSUM:
        expected = None
        stream.write(
            f"WARNING: {url} is NOT VERIFIED (checksum: {checksum!r}); anything served there is used. "
            "Give dataset.sources[].checksum as 'sha256:<hex>' to verify it.\n"
        )
        log.warning("download of %s is not verified (checksum %r)", url, checksum)
    else:
        expected = Checksum.parse(checksum)
    part = dest.with_name(dest.name + ".part")
    url = normalise_url(url)
    try:
        try:
            resp = _open_url(url, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DownloadError(
                f"could not download {url}: {getattr(e, 'reason', e)}. "
                "No network? Point the config at a mirror (dataset.sources: [{url: 'file:///path/to/archive.tar.gz', "
                "checksum: 'sha256:...'}]) or at an already-extracted folder (dataset.extracted_dir)."
            ) from e
        with resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            total = int(total) if total and str(total).isdigit() else None
            stream.write(f"downloading {url} -> {dest} ({'%.1f MB' % (total / 1e6) if total else 'size unknown'})\n")
            prog = _Progress(url, total, stream)
            h = hashlib.new(expected.algo) if expected else None
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                if h:
                    h.update(chunk)
                prog.update(len(chunk))
            if total is not None and prog.done != total:
                raise DownloadError(f"download of {url} ended early: {prog.done} of {total} bytes")
        if expected:
            actual = h.hexdigest()
            if actual != expected.hexdigest:
                raise DownloadError(
                    f"checksum mismatch for {url}: expected {expected}, got {expected.algo}:{actual}. "
                    "The partial file was deleted. If the source changed on purpose, update dataset.sources[].checksum."
                )
            stream.write(f"checksum ok ({expected})\n")
        os.replace(part, dest)
        return dest
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def download_first(
    sources: list[dict], dest: str | os.PathLike, *, timeout: float = 60.0, progress_stream=None
) -> dict:
    """Try each ``{url, checksum}`` in order; return the one that worked. Errors name every URL tried."""
    errors = []
    for src in sources:
        try:
            download(src["url"], dest, src.get("checksum"), timeout=timeout, progress_stream=progress_stream)
            return src
        except DownloadError as e:
            errors.append(str(e))
            if progress_stream:
                progress_stream.write(f"WARNING: {e}\n")
    raise DownloadError("no dataset source could be used:\n  - " + "\n  - ".join(errors))


def _is_within(base: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(base.resolve())
        return True
    except ValueError:
        return False


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int = MAX_EXTRACT_BYTES,
    max_members: int = MAX_EXTRACT_MEMBERS,
) -> list[str]:
    """Extract a .tar(.gz/.bz2/.xz) or .zip archive into ``dest`` refusing anything that would escape it.

    Absolute paths, ``..`` components, links pointing outside ``dest``, device files and FIFOs
    are refused with an error naming the member, and so is an archive that would unpack to more than
    ``max_bytes`` or ``max_members`` (a decompression bomb); nothing is extracted in that case (the
    whole archive is checked before the first file is written). A damaged or truncated archive is an
    error naming it.
    """
    import zlib

    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    damaged = (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, OSError)
    try:
        return _safe_extract(archive, dest, max_bytes, max_members)
    except DownloadError:
        raise
    except damaged as e:
        raise DownloadError(
            f"archive {archive} is damaged or truncated ({type(e).__name__}: {e or 'unexpected end of data'}); "
            "delete it and download it again (snakemake --forcerun download_dataset), or check the mirror it "
            "came from"
        ) from e


def _check_totals(archive: Path, sizes: list[int], max_bytes: int, max_members: int) -> None:
    if len(sizes) > max_members:
        raise DownloadError(
            f"archive {archive} holds {len(sizes)} members, more than the limit {max_members} "
            "(dataset.max_extract_members); refusing to extract"
        )
    total = sum(sizes)
    if total > max_bytes:
        raise DownloadError(
            f"archive {archive} would unpack to {total / 1e9:.2f} GB, more than the limit "
            f"{max_bytes / 1e9:.2f} GB (dataset.max_extract_bytes); refusing to extract"
        )


def _safe_extract(archive: Path, dest: Path, max_bytes: int, max_members: int) -> list[str]:
    names: list[str] = []

    def check_name(name: str) -> None:
        p = PurePosixPath(name)
        parts = p.parts
        if p.is_absolute() or name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DownloadError(f"unsafe path in archive {archive}: {name!r} would be written outside {dest}")
        if not _is_within(dest, dest / name):
            raise DownloadError(f"unsafe path in archive {archive}: {name!r} would be written outside {dest}")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_totals(archive, [i.file_size for i in infos], max_bytes, max_members)
            for info in infos:
                check_name(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise DownloadError(
                        f"archive {archive} holds a symbolic link {info.filename!r}; refusing to extract"
                    )
                names.append(info.filename)
            zf.extractall(dest)
        return names
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.TarError as e:
        raise DownloadError(f"{archive} is not a readable tar or zip archive: {e}") from e
    with tf:
        members = tf.getmembers()
        _check_totals(archive, [m.size for m in members], max_bytes, max_members)
        for m in members:
            check_name(m.name)
            if m.issym() or m.islnk():
                link = m.linkname
                target = (dest / PurePosixPath(m.name).parent / link) if m.issym() else dest / link
                if PurePosixPath(link).is_absolute() or not _is_within(dest, target):
                    raise DownloadError(
                        f"unsafe link in archive {archive}: {m.name!r} -> {link!r} points outside {dest}"
                    )
            elif not (m.isfile() or m.isdir()):
                raise DownloadError(f"archive {archive} holds a special file {m.name!r}; refusing to extract")
            names.append(m.name)
        # the checks above already ran; the 'data' filter is a second line of defence where available
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(dest, members=members)
    return names
