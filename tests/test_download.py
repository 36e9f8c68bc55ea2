"""Download, checksum and safe extraction."""

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from edgeasr.download import Checksum, DownloadError, download, download_first, normalise_url, safe_extract


def _file(tmp_path, data=b"hello world" * 1000):
    p = tmp_path / "src.bin"
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def test_checksum_parse_and_errors():
    c = Checksum.parse("MD5:" + "a" * 32)
    assert (c.algo, c.hexdigest) == ("md5", "a" * 32)
    with pytest.raises(DownloadError, match="md5:<hex>"):
        Checksum.parse("abc")
    with pytest.raises(DownloadError, match="unknown"):
        Checksum.parse("crc32:deadbeef")
    with pytest.raises(DownloadError, match="64 hex digits"):
        Checksum.parse("sha256:abc")


def test_download_file_url_verifies_sha256_and_md5(tmp_path):
    src, sha, md5 = _file(tmp_path)
    log = io.StringIO()
    out = download(src.as_uri(), tmp_path / "a" / "out.bin", f"sha256:{sha}", progress_stream=log)
    assert out.read_bytes() == src.read_bytes()
    assert "100.0%" in log.getvalue() and "checksum ok" in log.getvalue()
    out2 = download(str(src), tmp_path / "b.bin", f"md5:{md5}")  # plain local path works too
    assert out2.read_bytes() == src.read_bytes()


def test_checksum_mismatch_deletes_partial_and_names_both_sums(tmp_path):
    src, sha, _ = _file(tmp_path)
    wrong = "0" * 64
    dest = tmp_path / "out.bin"
    with pytest.raises(DownloadError) as e:
        download(src.as_uri(), dest, f"sha256:{wrong}")
    msg = str(e.value)
    assert f"sha256:{wrong}" in msg and f"sha256:{sha}" in msg
    assert not dest.exists()
    assert not list(tmp_path.glob("out.bin*")), "no partial file may be left"


def test_missing_file_error_names_url_and_how_to_fix(tmp_path):
    url = (tmp_path / "nope.tar.gz").as_uri()
    with pytest.raises(DownloadError) as e:
        download(url, tmp_path / "out", None)
    assert url in str(e.value)
    assert "extracted_dir" in str(e.value) and "mirror" in str(e.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()


def test_unreachable_host_then_mirror(tmp_path):
    src, sha, _ = _file(tmp_path)
    log = io.StringIO()
    used = download_first(
        [
            {"url": "http://127.0.0.1:9/none.tar.gz", "checksum": None},
            {"url": src.as_uri(), "checksum": f"sha256:{sha}"},
        ],
        tmp_path / "o.bin",
        timeout=5,
        progress_stream=log,
    )
    assert used["url"] == src.as_uri()
    assert "127.0.0.1:9" in log.getvalue()
    with pytest.raises(DownloadError, match="no dataset source could be used"):
        download_first([{"url": "http://127.0.0.1:9/x"}], tmp_path / "p.bin", timeout=5)


def test_normalise_url_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_url("a/b.tar.gz") == (tmp_path / "a" / "b.tar.gz").as_uri()
    assert normalise_url("https://x/y") == "https://x/y"


def _tar(tmp_path, members):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = b"x"
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tf.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, target
                tf.addfile(info)
    return path


@pytest.mark.parametrize(
    "members",
    [
        [("ok.txt", "file", None), ("../escape.txt", "file", None)],
        [("/abs/escape.txt", "file", None)],
        [("link", "sym", "/etc/passwd")],
        [("sub/link", "sym", "../../outside")],
        [("hl", "hard", "../outside")],
    ],
)
def test_traversal_attempts_are_refused_and_nothing_extracted(tmp_path, members):
    arch = _tar(tmp_path, members)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="unsafe|outside"):
        safe_extract(arch, dest)
    assert not (tmp_path / "escape.txt").exists()
    assert list(dest.rglob("*")) == [], "the archive is checked whole before anything is written"


def test_zip_traversal_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../x.txt", "x")
    with pytest.raises(DownloadError, match="unsafe"):
        safe_extract(path, tmp_path / "d")
    assert not (tmp_path / "x.txt").exists()


def test_safe_extract_keeps_internal_links(tmp_path):
    arch = _tar(tmp_path, [("a/file.txt", "file", None), ("a/link.txt", "sym", "file.txt")])
    names = safe_extract(arch, tmp_path / "d")
    assert set(names) == {"a/file.txt", "a/link.txt"}
    assert os.readlink(tmp_path / "d" / "a" / "link.txt") == "file.txt"


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(b"not a tar")
    with pytest.raises(DownloadError, match="not a readable tar or zip"):
        safe_extract(p, tmp_path / "d")
