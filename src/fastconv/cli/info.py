"""`python -m fastconv info`: version, compiler, threads, CPU path, CUDA devices, the ops' devices."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    """Register the `info` command on the CLI's subparsers."""
    p = subparsers.add_parser("info", help="version, compiler, threads, CPU path, CUDA devices, the ops' devices")
    p.set_defaults(func=_cmd_info, parser=p)


def _cmd_info(args) -> int:
    from ..runtime import info

    for key, value in info().items():
        if key == "ops":  # op name -> devices
            value = ", ".join(f"{name} ({'/'.join(devices)})" for name, devices in value.items())
        print(f"{key:>14}: {value}")
    return 0
