"""`dislab` command line: a thin layer over the Python API.

Each part of the library adds its own sub-commands through a ``register(subparsers)``
function in its ``cli`` module, so this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dislab import __version__
from dislab.errors import DislabError

# (module, what it adds) in the order shown by --help.
_COMMAND_MODULES = [
    "dislab.viz.quickstart_cli",  # quickstart
    "dislab.data.cli",  # data list | render | show
    "dislab.train.cli",  # train, models
    "dislab.metrics.cli",  # evaluate, metrics
    "dislab.study.cli",  # study plan | run | collect | report
    "dislab.viz.cli",  # report, traverse, analyze
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dislab",
        description="Learn and evaluate disentangled representations "
        "(models, metrics, data sets and studies of the disentanglement literature).",
    )
    parser.add_argument("--version", action="version", version=f"dislab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except DislabError as e:
        print(f"dislab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("dislab: interrupted; work written so far is kept (re-run to resume).",
              file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
