"""`dislab` command line: a thin layer over the Python API.

Each part of the library adds its own sub-commands through a ``register(subparsers)``
function in its ``cli`` module, so this file only wires them together, importing only the
module of the command that runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from dislab import __version__
from dislab.errors import DislabError

# Every sub-command: (the module that registers it, its one-line help), in --help order. Only
# the module of the command being run is imported, so `dislab --version`, `dislab --help` and
# light commands do not load torch, numba or matplotlib (benchmarks/cli_startup.py times it;
# tests check that this table matches what the modules register).
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("dislab.quickstart_cli",
                   "train, evaluate and report a disentangled dSprites model"),
    "data": ("dislab.data.cli", "list, render and look at the ground-truth data sets"),
    "train": ("dislab.train.cli",
              "train a method (β-VAE, FactorVAE, β-TCVAE, ...) and write a run folder"),
    "models": ("dislab.train.cli",
               "list the methods with their hyper-parameters, defaults and sources"),
    "evaluate": ("dislab.metrics.cli",
                 "score a training run with disentanglement metrics (writes metrics.json)"),
    "metrics": ("dislab.metrics.cli", "list the metrics with their defaults"),
    "study": ("dislab.study.cli",
              "plan, run, collect and report sweeps (methods × hparams × seeds × data)"),
    "report": ("dislab.viz.cli",
               "HTML report of a trained run (reconstructions, traversals, metrics)"),
    "traverse": ("dislab.viz.cli", "latent traversal image (or GIF) of a trained run"),
    "analyze": ("dislab.viz.cli",
                "analyses across runs: effective factors, latent order (Do & Tran 2020), "
                "UDR (Duan et al. 2020)"),
}


def parse_value(text: str) -> Any:
    """A command-line value: ``true/yes/on`` and ``false/no/off`` as booleans, else JSON where
    it parses (numbers, lists, objects), else the string itself."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str] | None, flag: str, form: str = "KEY=VALUE"
                      ) -> dict[str, Any]:
    """``{key: value}`` of repeated ``KEY=VALUE`` command-line items (values by
    :func:`parse_value`); an item without ``=`` is a :class:`DislabError` naming ``flag`` and
    the expected ``form``. The one parser of every ``--option``/``--hparam``-style flag."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise DislabError(f"{flag} expects {form}, got {item!r}.")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


class _Lazy(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Sub-parsers that keep the first parser registered under a name: a module's real parser
    replaces the placeholder of the same name."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if name in self._name_parser_map and not getattr(
                self._name_parser_map[name], "_dislab_placeholder", False):
            raise ValueError(f"dislab command {name!r} registered twice")
        if name in self._name_parser_map:  # drop the placeholder and its help line
            del self._name_parser_map[name]
            self._choices_actions = [a for a in self._choices_actions if a.dest != name]
        return super().add_parser(name, **kwargs)


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``dislab`` parser; ``commands`` (default: all) are fully built, the others are
    placeholders that only carry their help line."""
    parser = argparse.ArgumentParser(
        prog="dislab",
        description="Learn and evaluate disentangled representations "
        "(models, metrics, data sets and studies of the disentanglement literature).",
    )
    parser.add_argument("--version", action="version", version=f"dislab {__version__}")
    parser.register("action", "dislab_parsers", _Lazy)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action="dislab_parsers")
    wanted = list(COMMANDS) if commands is None else [c for c in commands if c in COMMANDS]
    for name, (_, help_) in COMMANDS.items():
        if name not in wanted:
            stub = sub.add_parser(name, help=help_, add_help=False)
            stub._dislab_placeholder = True  # type: ignore[attr-defined]
    for module_name in dict.fromkeys(COMMANDS[c][0] for c in wanted):
        # a command module that fails to import raises: a typo never drops a command silently
        importlib.import_module(module_name).register(sub)
    # --help order: the table's
    sub._choices_actions.sort(key=lambda a: list(COMMANDS).index(a.dest)
                              if a.dest in COMMANDS else len(COMMANDS))
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser([command] if command else [])
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
