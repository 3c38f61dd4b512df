"""`python -m attn <command>` (also the `attn` console script).

Each command is a module with `add_arguments(parser)` and `run(args) -> int`, and a docstring
whose first line is its help. Adding a command means adding a line to COMMANDS; a listed module
that is not there yet is left out of the menu.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "info": "attn.info",      # platform, devices, versions, which backends run here
    "demo": "attn.demo",      # paged caches, prefill/decode/convert against the reference
    "bench": "attn.bench",    # benchmarks (benchmarks/)
    "tune": "attn.tune",      # offline tuning into attn/configs/
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:              # the command itself is not there (yet); its imports must be
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m attn",
                                     description="attn: portable attention kernels for LLM inference")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = _load(module)
        if mod is None:
            continue
        doc = (mod.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else None, description=(mod.__doc__ or "").strip() or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)
