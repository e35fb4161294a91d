"""`python -m fastconv bench ...`: the benchmark suite; its command line lives in fastconv.bench.cli."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    """Register the `bench` command on the CLI's subparsers."""
    from ..bench.cli import register  # imported here: fastconv.bench.cli itself imports cli._common

    register(subparsers)
