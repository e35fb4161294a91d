"""Command line: python -m fastconv {train,eval,bench,info,demo,viz,summary} (see --help).

One module per subcommand, each with add_parser(subparsers); what they share (argument types, the
errors that name a flag, reading a run back) is in _common."""

from __future__ import annotations

import argparse
import sys

from . import bench, demo, eval as eval_command, info, summary, train, viz
from ._common import CommandError, UsageError

#: The subcommands in the order `--help` lists them.
_COMMANDS = (info, demo, train, eval_command, bench, viz, summary)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand included (tests check documented commands with it)."""
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit code."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # under the subcommand's usage, which lists the flags it does take
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except UsageError as e:
        args.parser.error(str(e))
    except (CommandError, FileNotFoundError) as e:  # e.g. no dataset anywhere: say where to put it, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main"]
