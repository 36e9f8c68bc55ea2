"""The conda environment files carry exactly the pip pins of pyproject.toml."""

import re
import tomllib

import yaml
from conftest import ROOT


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_pins() -> dict[str, str]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = proj["dependencies"] + proj["optional-dependencies"]["models"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _conda_pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pips = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d][0]["pip"]
    return {_name(r): r.replace(" ", "") for r in pips}


def test_main_env_matches_pyproject_exactly():
    assert _conda_pins(ROOT / "envs" / "edgeasr.yaml") == _pyproject_pins()


def test_figures_env_pins_are_pyproject_pins():
    pins, figs = _pyproject_pins(), _conda_pins(ROOT / "envs" / "figures.yaml")
    assert figs and all(pins[k] == v for k, v in figs.items()), {k: (v, pins.get(k)) for k, v in figs.items()}


def test_torch_range_admits_2_13_and_excludes_newer():
    """The pinned torch range takes the local 2.13.0 CPU build and no newer release (a newer one pulls
    several GB of CUDA packages), and envs/setup.sh keeps an installed torch in exactly that range."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(_pyproject_pins()["torch"][len("torch") :])
    assert "2.13.0" in spec and "2.14.0" not in spec and "3.0.0" not in spec
    m = re.search(r"\((\d+), (\d+)\) <= v < \((\d+), (\d+)\)", (ROOT / "envs" / "setup.sh").read_text())
    assert m, "envs/setup.sh no longer states the torch range it keeps"
    lo, hi = f"{m[1]}.{m[2]}", f"{m[3]}.{m[4]}"
    below = f"{m[1]}.{int(m[2]) - 1}.0" if int(m[2]) else f"{int(m[1]) - 1}.99.0"
    assert f"{lo}.0" in spec and f"{hi}.0" not in spec and below not in spec, (spec, lo, hi)
