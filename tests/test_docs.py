"""Every fenced code block of README.md and docs/*.md works as written.

- ```python blocks run: each document's blocks in order in one fresh interpreter (a reader's
  session), in a temporary directory, with FASTCONV_DATA pointing at a tiny synthetic
  Fashion-MNIST so that a snippet that trains for an epoch takes a moment. A block that needs an
  optional package which is not installed (OPTIONAL) is skipped with the reason.
- ```bash blocks: every command is checked. `python -m fastconv ...` is parsed by the CLI's own
  parser (a wrong flag or value fails) and the cheap subcommands (RUN_FOR_REAL) run for real, in
  order, in a temporary directory with the same tiny dataset; `pip install ".[extras]"` names
  extras that pyproject.toml defines; torchrun's flags go through torch's own parser and its
  script's through fastconv's; `apt-get install` names a package apt knows (where apt has package
  lists); scripts and pytest paths exist. A command with no check fails: add one here.
- ```text blocks are prose; a block without a language fails (say what it is).
Inline `python -m fastconv ...` and `pip install ...` commands in the prose are checked the same
way (parsed, not run), except synopses with [optional] parts or a|b choices.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastconv.__main__ import build_parser
from test_training import synthetic_split

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```+)([^\n`]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
LANGUAGES = {"python", "bash", "text"}
OPTIONAL = {"torch", "matplotlib", "tqdm", "scipy", "PIL"}  # extras a snippet may need
# Subcommands that take seconds on the tiny dataset, with the optional packages they need.
RUN_FOR_REAL = {"info": (), "summary": (), "demo": (), "train": (), "eval": (), "viz": ("matplotlib",)}
SYNOPSIS = re.compile(r"\[|\||\.\.\.")


def _blocks(path: Path):
    """(first line number, language, text) of each fenced block."""
    text = path.read_text()
    for m in FENCE.finditer(text):
        yield text.count("\n", 0, m.start()) + 2, m.group(2).strip(), m.group(3)


def _prose(path: Path) -> str:
    return FENCE.sub("", path.read_text())


def _blocks_of(language: str):
    return [(path, line, code) for path in DOCUMENTS for line, lang, code in _blocks(path) if lang == language]


def _id(path: Path, line: int | None = None) -> str:
    name = str(path.relative_to(ROOT))
    return name if line is None else f"{name}:{line}"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny synthetic Fashion-MNIST (64 training, 32 test images) for FASTCONV_DATA."""
    root = tmp_path_factory.mktemp("data")
    directory = root / "fashion-mnist"
    directory.mkdir()
    rng = np.random.default_rng(0)
    synthetic_split(directory, rng, 64, "train")
    synthetic_split(directory, rng, 32, "test")
    return root


def _environment(data_dir: Path) -> dict:
    env = dict(os.environ, FASTCONV_DATA=str(data_dir), MPLBACKEND="Agg")
    package_parent = str(Path(__import__("fastconv").__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def test_every_block_says_its_language():
    untagged = [f"{_id(path, line)}: ```{lang}" for path in DOCUMENTS for line, lang, _ in _blocks(path)
                if lang not in LANGUAGES]
    assert not untagged, f"fenced blocks need one of {sorted(LANGUAGES)}: {untagged}"


# ---- python blocks --------------------------------------------------------------------------------------

_RUNNER = """
import json, sys, traceback
blocks, optional = json.load(sys.stdin)
namespace, results = {"__name__": "__main__"}, []
for line, code in blocks:
    try:
        exec(compile(code, f"<block at line {line}>", "exec"), namespace)
        results.append([line, "ok", ""])
    except ModuleNotFoundError as e:
        status = "skipped" if (e.name or "").split(".")[0] in optional else "failed"
        results.append([line, status, traceback.format_exc()])
    except BaseException:
        results.append([line, "failed", traceback.format_exc()])
print("RESULTS " + json.dumps(results))
"""

_PYTHON_DOCUMENTS = sorted({path for path, _, _ in _blocks_of("python")})


@pytest.mark.parametrize("path", _PYTHON_DOCUMENTS, ids=[_id(p) for p in _PYTHON_DOCUMENTS])
def test_python_blocks_run(path, data_dir, tmp_path):
    blocks = [(line, code) for p, line, code in _blocks_of("python") if p == path]
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps([blocks, sorted(OPTIONAL)]),
                          capture_output=True, text=True, cwd=tmp_path, env=_environment(data_dir), timeout=600)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and marker, f"the runner died:\n{proc.stdout}\n{proc.stderr}"
    results = json.loads(marker[0][len("RESULTS "):])
    failed = [f"block at line {line}:\n{why}" for line, status, why in results if status == "failed"]
    assert not failed, f"{_id(path)}:\n" + "\n".join(failed)
    skipped = [f"line {line} ({why.strip().splitlines()[-1]})" for line, status, why in results if status == "skipped"]
    if skipped:
        pytest.skip(f"{_id(path)}: the other blocks ran; needs an optional package: {', '.join(skipped)}")


# ---- commands -----------------------------------------------------------------------------------------------


def _commands(code: str) -> list[list[str]]:
    """Each command of a shell snippet as argv: continuation lines joined, comments dropped, split at
    && ; | and line ends, leading environment assignments (NAME=value) dropped."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current = []
        for token in [*lexer, ";"]:
            if set(token) <= set("&|;"):
                if current:
                    commands.append(current)
                current = []
            elif current or not re.fullmatch(r"\w+=\S*", token):
                current.append(token)
    return commands


def _parse_fastconv(args: list[str]) -> str | None:
    """Why fastconv's CLI parser refuses `args`, or None."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as e:
        if e.code:
            return f"python -m fastconv {shlex.join(args)}: {err.getvalue().strip().splitlines()[-1]}"
    return None


def _pyproject_extras() -> dict:
    try:
        import tomllib
    except ImportError:
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11 or tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


_PIP_OPTIONS_WITH_VALUE = {"-i", "--index-url", "--extra-index-url", "-r", "--requirement", "-c", "--constraint",
                           "-f", "--find-links", "-C", "--config-settings", "-t", "--target"}


def _check_pip(args: list[str]) -> str | None:
    if not args or args[0] != "install":
        return f"pip {shlex.join(args)}: only `pip install` is checked"
    targets, rest = [], iter(args[1:])
    for a in rest:
        if a in _PIP_OPTIONS_WITH_VALUE:
            next(rest, None)
        elif a in ("-e", "--editable"):
            continue
        elif not a.startswith("-"):
            targets.append(a)
    extras = _pyproject_extras()
    for target in targets:
        m = re.fullmatch(r"\.(?:\[([\w,-]*)\])?", target)
        if not m:
            return f"pip install {target}: the docs install this checkout, '.' or '.[extras]'"
        unknown = [e for e in (m.group(1) or "").split(",") if e and e not in extras]
        if unknown:
            return f"pip install {target}: pyproject.toml has no extra {unknown} (it has {sorted(extras)})"
    return None


def _check_apt_get(args: list[str]) -> str | None:
    if args[:1] == ["update"]:
        return None
    packages = [a for a in args[1:] if not a.startswith("-")] if args[:1] == ["install"] else None
    if packages is None:
        return f"apt-get {shlex.join(args)}: only update and install are checked"
    if not shutil.which("apt-cache"):
        return None  # not a Debian system: nothing to check against
    for package in packages:
        known = subprocess.run(["apt-cache", "show", package], capture_output=True).returncode == 0
        has_lists = subprocess.run(["apt-cache", "pkgnames"], capture_output=True, text=True).stdout.strip()
        if not known and has_lists:
            return f"apt-get install {package}: apt knows no such package"
    return None


def _check_torchrun(args: list[str]) -> str | None:
    run = pytest.importorskip("torch.distributed.run", reason="checking torchrun's flags needs torch")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = run.get_args_parser().parse_args(args)
    except SystemExit:
        return f"torchrun {shlex.join(args)}: {err.getvalue().strip().splitlines()[-1]}"
    if not (parsed.module and parsed.training_script == "fastconv"):
        return f"torchrun {shlex.join(args)}: expected `-m fastconv ...`"
    return _parse_fastconv(parsed.training_script_args)


def _check_path(path: str, executable: bool = False) -> str | None:
    p = ROOT / path
    if not p.exists():
        return f"{path}: no such file in the checkout"
    if executable and not os.access(p, os.X_OK):
        return f"{path}: not executable"
    return None


def check_command(argv: list[str]) -> str | None:
    """Why the command `argv` would not work as written, or None. Fails on commands with no check."""
    program, args = argv[0], argv[1:]
    if program in ("python", "python3") and args[:2] == ["-m", "fastconv"]:
        return _parse_fastconv(args[2:])
    if program in ("python", "python3") and args[:2] == ["-m", "pip"]:
        return _check_pip(args[2:])
    if program == "pip":
        return _check_pip(args)
    if program in ("python", "python3") and args[:2] == ["-m", "pytest"]:
        paths = [a for a in args[2:] if not a.startswith("-")]
        return next((why for why in map(_check_path, paths) if why), None)
    if program == "apt-get":
        return _check_apt_get(args)
    if program == "torchrun":
        return _check_torchrun(args)
    if program.startswith("scripts/"):
        return _check_path(program, executable=True)
    return f"{shlex.join(argv)}: no check for {program!r} in tests/test_docs.py; add one"


def _run_for_real(argv: list[str]) -> bool:
    """A cheap `python -m fastconv` command whose optional packages are installed."""
    if argv[0] not in ("python", "python3") or argv[1:3] != ["-m", "fastconv"] or len(argv) < 4:
        return False
    if "--help" in argv or "-h" in argv:
        return True
    needs = RUN_FOR_REAL.get(argv[3])
    return needs is not None and all(_importable(m) for m in needs)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


_BASH_BLOCKS = _blocks_of("bash")


@pytest.mark.parametrize("path,line,code", _BASH_BLOCKS, ids=[_id(p, n) for p, n, _ in _BASH_BLOCKS])
def test_bash_block_commands(path, line, code, data_dir, tmp_path):
    """Each command passes its check; the cheap fastconv commands then run in order in one directory."""
    commands = _commands(code)
    assert commands, "an empty block"
    problems = [why for why in map(check_command, commands) if why]
    assert not problems, "\n".join(problems)
    for argv in filter(_run_for_real, commands):
        proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, cwd=tmp_path,
                              env=_environment(data_dir), timeout=600)
        assert proc.returncode == 0, f"{shlex.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


_INLINE = re.compile(r"`((?:python3? -m (?:fastconv|pip)|pip) [^`]*)`", re.S)
# Synopses such as `python -m fastconv bench [--quick] [--sweep kernel|image]` are not commands.
_INLINE_COMMANDS = [(path, command) for path in DOCUMENTS for m in _INLINE.finditer(_prose(path))
                    for command in [" ".join(m.group(1).split())]
                    if not ("-m fastconv" in command and SYNOPSIS.search(command))]


@pytest.mark.parametrize("path,command", _INLINE_COMMANDS, ids=[f"{_id(p)}:{c}" for p, c in _INLINE_COMMANDS])
def test_inline_commands_parse(path, command):
    command = re.sub(r"<[^>]*>", "PLACEHOLDER", command)  # e.g. runs/<the .npz that train printed>
    why = check_command(shlex.split(command))
    assert why is None, why


@pytest.mark.parametrize("command,complaint", [
    ("python -m fastconv train --epochs 3 --out lenet.npz", None),
    ("python3 -m fastconv train --epocs 3", "unrecognized arguments"),
    ("python -m fastconv train --optimizer adagrad", "invalid choice"),
    ("python -m fastconv bogus", "invalid choice"),
    ('python3 -m pip install ".[test,plot]"', None),
    ('python3 -m pip install ".[tests]"', "no extra ['tests']"),
    ("pip install fastconv[plot]", "install this checkout"),
    ("python3 -m pytest -q tests/no_such_test.py", "no such file"),
    ("scripts/no_such_script.sh", "no such file"),
    ("torchrun --nprocs 2 -m fastconv train", "unrecognized arguments: --nprocs"),
    ("torchrun --nproc-per-node 2 -m fastconv train --distributed --epochs x", "expected an integer"),
    ("make all", "no check for 'make'"),
])
def test_check_command_catches(command, complaint):
    """The checks themselves: a wrong flag, value, extra, path or an unknown program is reported."""
    why = check_command(shlex.split(command))
    assert why is None if complaint is None else complaint in (why or ""), why


def test_commands_split_like_a_shell():
    code = 'A=1 python3 -m fastconv info && pip install ".[x]" # note\nscripts/a.sh \\\n  -C x  ; torchrun -m fastconv train'
    assert _commands(code) == [["python3", "-m", "fastconv", "info"], ["pip", "install", ".[x]"],
                               ["scripts/a.sh", "-C", "x"], ["torchrun", "-m", "fastconv", "train"]]
