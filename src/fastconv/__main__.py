"""Command line: python -m fastconv {train,eval,bench,info,demo,viz,summary} (see --help); the
commands live in fastconv.cli."""

from __future__ import annotations

import sys

from .cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
