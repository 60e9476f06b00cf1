"""Console entry point ``lowrankdp``.

Subcommands live in ``lowrankdp/commands/<name>.py``; each module defines
``register(subparsers)`` which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). Modules are discovered
automatically, and must import heavy dependencies (torch, transformers, …) inside
their handlers so that ``lowrankdp --help`` stays fast and torch-free.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from typing import Any, Sequence

from . import __version__
from .results import to_jsonable


def print_json(obj: Any) -> None:
    """Print one JSON object (the ``--json`` output format of every subcommand)."""
    json.dump(to_jsonable(obj), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowrankdp",
        description="Privacy of low-rank (LoRA-style) fine-tuning: bounds, accountants, attacks, experiments.",
    )
    parser.add_argument("--version", action="version", version=f"lowrankdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `lowrankdp ... | head`: the reader left; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:  # disk full, permission denied, is a directory, ...: one line naming the path
        print(f"lowrankdp {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"lowrankdp {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return int(code or 0)


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: reason, then the path(s) involved when the error carries them."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    if not paths:
        return reason.splitlines()[0] if reason else type(exc).__name__
    return f"{reason}: {' -> '.join(paths)}".replace("\n", " ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
