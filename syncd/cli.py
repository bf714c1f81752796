"""The `syncd` command line. Sub-commands arrive with the issues that build them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from syncd import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="run the main job against the built-in emulators")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        print("syncd demo: not yet. The sync cycle and the demo tenant arrive with their issues.")
        return 0
    parser.print_help()
    return 2
