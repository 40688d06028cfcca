"""The command line: errors become one line and an exit code here, and only here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clive import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad usage or bad input: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clive",
        description="An agent that inhabits a terminal: it reads the screen, types keys, and "
        "keeps or discards experiments in git.",
    )
    parser.add_argument("--version", action="version", version=f"clive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="drive bash and vim in a real PTY and show what clive sees")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "demo":
            from clive.demo import run_demo

            return run_demo()
    except UsageError as exc:
        print(f"clive: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clive: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE
