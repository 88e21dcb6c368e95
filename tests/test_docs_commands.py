"""The `dislab` commands of README.md and docs/*.md (their ```bash blocks), as written.

Every command is parsed by the real `dislab` parser (a renamed flag or command in the code
fails here). The cheap ones run as written. The ones that train or evaluate for minutes or
hours run with one listed override that shrinks them (``TINY_OVERRIDES``), or are only
parsed, for the reason listed in ``PARSE_ONLY``. Set-up lines (venv, pip), cluster commands
and benchmark scripts are not `dislab` commands and are not run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dislab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Placeholders of the syntax summaries -> values that make the line a real command.
PLACEHOLDERS = {"SPEC": "small_dsprites", "DIR": "studies/loc"}
#: Commands run exactly as written (seconds each).
RUN_AS_WRITTEN = [
    "dislab models",
    "dislab metrics",
    "dislab train --model annealed_vae --c-max 25 --print-config",
]
#: Commands run with extra flags appended that shrink them (why in the comment).
TINY_OVERRIDES = {
    # measuring 3 steps of 6 methods takes ~20 s on a loaded 2-core CPU
    "dislab study plan locatello2019 --data dsprites --seeds 2 --steps 2000": ["--no-measure"],
    "dislab study plan small_dsprites": ["--no-measure"],
}
#: Commands only parsed, with the reason.
PARSE_ONLY = {
    "train": "trains for thousands of steps (test_bad_input_train runs train and resume tiny)",
    "study run": "trains and evaluates a sweep (tests/test_study_*.py run the machinery)",
    "study collect": "needs a study folder from `study run`",
    "study report": "needs a study folder from `study run`",
    "evaluate": "needs a trained run; encodes the full grid (tests/test_metrics_suite.py)",
    "report": "needs a trained run (tests/test_run_report.py)",
    "traverse": "needs a trained run (tests/test_run_report.py)",
    "analyze": "needs several trained runs (tests/test_analyze.py)",
    "quickstart": "trains for 30 minutes (tests/test_quickstart.py runs it tiny)",
}


def doc_commands() -> list[tuple[str, str]]:
    """``(file name, command)`` for every `dislab ...` line of a ```bash block (comments and
    line continuations removed; `a && b` split; placeholders filled in)."""
    out = []
    for path in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                for part in line.split("&&"):
                    words = part.split()
                    if not words or not words[0].endswith("dislab"):
                        continue
                    words[0] = "dislab"
                    words = [PLACEHOLDERS.get(w, w) for w in words]
                    out.append((path.name, " ".join(words)))
    return out


COMMANDS = doc_commands()


def test_the_docs_have_commands() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"README.md", "training.md", "studies.md", "quickstart.md"} <= names
    for cmd in RUN_AS_WRITTEN + list(TINY_OVERRIDES):
        assert cmd in {c for _, c in COMMANDS}, f"{cmd!r} is no longer in the docs"


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_every_doc_command_parses(where: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as e:  # argparse's way of rejecting a command line
        pytest.fail(f"{where}: `{command}` does not parse (exit {e.code})")
    head = " ".join(argv[:2]) if argv[0] == "study" else argv[0]
    runnable = command in RUN_AS_WRITTEN or command in TINY_OVERRIDES
    assert runnable or head in PARSE_ONLY, f"{command!r}: run it here or list why not"


@pytest.mark.parametrize("command", RUN_AS_WRITTEN + list(TINY_OVERRIDES))
def test_doc_command_runs(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)[1:] + TINY_OVERRIDES.get(command, [])
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()


def help_examples() -> list[str]:
    """The `dislab ...` example lines of every command's --help (epilog and description)."""
    import argparse

    found: list[str] = []

    def visit(parser: argparse.ArgumentParser) -> None:
        for text in (parser.epilog or "", parser.description or ""):
            for m in re.finditer(r"(?:^|\s)(dislab [^\n#;]*?)(?=\s*(?:#|\n|$|\)))", text):
                found.append(" ".join(m.group(1).split()))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    visit(sub)

    visit(build_parser())
    from dislab.cli import COMMANDS as names

    return sorted({e for e in found if e.split()[1] in names})  # not prose "dislab version"


HELP_EXAMPLES = help_examples()


def test_help_examples_exist() -> None:
    assert any(e.startswith("dislab train --out runs/x --resume") for e in HELP_EXAMPLES)


@pytest.mark.parametrize("command", HELP_EXAMPLES)
def test_every_help_example_parses(command: str) -> None:
    argv = shlex.split(command.rstrip("."))[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"--help example `{command}` does not parse (exit {e.code})")
