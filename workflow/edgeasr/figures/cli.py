"""Command line: ``python -m edgeasr.figures NAME --cells CELLS [--paper PAPER] --out OUT... [--option k=v]``."""

from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS, run
from .options import DEFAULT_OPTIONS, OPTION_DESCRIPTIONS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeasr.figures",
        description="Build one figure or derived table from results/tables/cells.csv.",
        epilog="names: "
        + ", ".join(COMMANDS)
        + ". Options (--option KEY=VALUE): "
        + "; ".join(f"{k} (default {DEFAULT_OPTIONS[k]!r}): {OPTION_DESCRIPTIONS[k]}" for k in DEFAULT_OPTIONS),
    )
    parser.add_argument("name", choices=list(COMMANDS), help="figure or table to build")
    parser.add_argument("--cells", required=True, help="results/tables/cells.csv")
    parser.add_argument("--paper", default=None, help="the study's values (resources/reference/...csv)")
    parser.add_argument("--out", nargs="+", required=True, help="output path(s); figure format from the suffix")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a figures option")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        if "=" not in item:
            parser.error(f"--option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key.strip()] = value
    try:
        run(args.name, args.cells, args.out, args.paper, options)
    except (ValueError, FileNotFoundError) as exc:
        print(f"edgeasr.figures {args.name}: error: {exc}", file=sys.stderr)
        return 2
    return 0
