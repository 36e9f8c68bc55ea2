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
    torch_pin = _pyproject_pins()["torch"]
    assert torch_pin == "torch>=2.4,<2.14"
