"""The `dislab` commands of README.md and docs/*.md (their ```bash blocks) and of every
command's `--help` examples, run as written.

Every command is parsed by the real `dislab` parser (a renamed flag or command in the code
fails here). Then each page's commands run, as written, in order, in one fresh folder (so
`evaluate runs/x` finds what `train ... --out runs/x` above it wrote), with the environment
variable ``DISLAB_TINY=1`` (:mod:`dislab.tiny`: a toy dSprites grid, 3 training steps, small
metric samples, 2 runs of a study; inert when unset). Shell globs are expanded as bash would.
A command that reads runs the page describes in prose but does not create gets them from the
listed ``PREREQUISITES`` first (train commands, also run tiny). Only the commands in
``PARSE_ONLY`` are not run, each for the reason given: they need the user's own files, a
server, a cluster or the network. Set-up lines (venv, pip), cluster commands and benchmark
scripts are not `dislab` commands and are not run.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import time
from pathlib import Path

import pytest

from dislab import tiny
from dislab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Placeholders of the syntax summaries -> values that make the line a real command.
PLACEHOLDERS = {"SPEC": "small_dsprites", "DIR": "studies/small"}
#: Commands not run, with the reason (every other command runs).
PARSE_ONLY = {
    "dislab train --model beta_vae --data images --data-path my_photos/ --out runs/photos":
        "needs the user's folder of photos",
    "dislab report runs/photos": "needs the run trained on the user's photos (line above)",
    "dislab train --model beta_vae --logger tensorboard --logger mlflow --mlflow-uri "
    "http://127.0.0.1:5000 --experiment my_sweep --out runs/b4":
        "needs an MLflow server at 127.0.0.1:5000",
    "dislab train --model beta_vae --logger wandb --out runs/b4_wandb":
        "needs the wandb extra and a W&B account",
    "dislab study run locatello2019 --out /shared/studies/loc --backend ray --address auto "
    "--threads 4": "needs a running Ray cluster (--address auto)",
    'dislab study run locatello2019 --out "$HOME/studies/loc" --backend ray --address auto '
    "--threads 8 --gpus 0.25": "needs a running Ray cluster with GPUs (--address auto)",
    "dislab study run locatello2019 --out ~/studies/loc --backend slurm --slurm-partition gpu "
    "--slurm-time 240 --slurm-gpus 1 --slurm-mem 16 --threads 8 --workers 50 --slurm-setup "
    '"source ~/venvs/dislab/bin/activate"': "needs a Slurm cluster",
    "dislab data show dsprites --path dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz "
    "--out real.png": "needs the official dSprites file (user-supplied)",
}
#: Runs a command reads that its page describes in prose but creates with no command of its
#: own -> the commands that make them (run tiny before the command; a glob counts as one).
_TRAIN_X = "dislab train --model beta_tcvae --data dsprites --beta 6 --steps 20000 --out runs/x"
PREREQUISITES = {
    # README: "effective factors" of runs with 5, 10 and 20 latents
    "runs/z5": [f"dislab train --model beta_tcvae --latent-dim {d} --out runs/z{d}"
                for d in (5, 10, 20)],
    # quickstart.md: a beta-VAE with beta 4
    "runs/b4": ["dislab train --model beta_vae --beta 4 --out runs/b4"],
    # quickstart.md: "train the same method with several latent sizes and seeds, then:"
    "runs/tc_d*_s*": [f"dislab train --model beta_tcvae --latent-dim {d} --seed {s} "
                      f"--out runs/tc_d{d}_s{s}" for d in (5, 10) for s in (0, 1)],
    # fidelity.md evaluates the README's run
    "runs/x": [_TRAIN_X],
    # the udr --help example reads the runs of the README's study
    "studies/loc/runs/*": ["dislab study run small_dsprites --out studies/loc"],
}
#: Commands that repeat, word for word, a command of an earlier page and whose output no later
#: command of their page reads -> the one page that runs them (the quickstart trains for
#: seconds here, but starts two processes).
RUN_ONCE = {"dislab quickstart": "README.md"}


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


def help_examples() -> list[str]:
    """The `dislab ...` example lines of every command's --help (epilog and description), in
    the order the parser lists them."""
    found: list[str] = []

    def visit(parser: argparse.ArgumentParser) -> None:
        for text in (parser.epilog or "", parser.description or ""):
            for m in re.finditer(r"(?:^|\s)(dislab [^\n#;]*?)(?=\s*(?:#|\n|$|\)))", text):
                found.append(" ".join(m.group(1).rstrip(".").split()))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    visit(sub)

    visit(build_parser())
    from dislab.cli import COMMANDS as names

    return list(dict.fromkeys(e for e in found if e.split()[1] in names))  # not prose


HELP_EXAMPLES = help_examples()
PAGES = {name: [c for n, c in COMMANDS if n == name] for name, _ in COMMANDS}


def _argv(command: str) -> list[str]:
    """The words bash would pass: quotes removed, globs expanded in the current folder."""
    out: list[str] = []
    for word in shlex.split(command)[1:]:
        matches = sorted(glob.glob(word)) if any(c in word for c in "*?[") else []
        out.extend(matches or [word])
    return out


def test_the_docs_have_commands() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"README.md", "training.md", "studies.md", "quickstart.md"} <= names
    every = {c for _, c in COMMANDS} | set(HELP_EXAMPLES)
    for cmd in PARSE_ONLY:
        assert cmd in every, f"{cmd!r} is no longer in the docs or --help"
    for cmd, page in RUN_ONCE.items():
        assert cmd in PAGES[page], f"{cmd!r} is no longer on {page}"
    assert any(e.startswith("dislab train --out runs/x --resume") for e in HELP_EXAMPLES)


@pytest.mark.parametrize("where,command", [*COMMANDS, *(("--help", c) for c in HELP_EXAMPLES)],
                         ids=[f"{w}: {c}" for w, c in COMMANDS] + HELP_EXAMPLES)
def test_every_command_parses(where: str, command: str) -> None:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as e:  # argparse's way of rejecting a command line
        pytest.fail(f"{where}: `{command}` does not parse (exit {e.code})")


def _run_page(where: str, commands: list[str], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> int:
    """Run ``commands`` in order in ``tmp_path`` with toy sizes; return how many ran."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tiny.ENV, "1")
    made: set[str] = set()
    ran = 0
    for command in commands:
        if command in PARSE_ONLY or RUN_ONCE.get(command, where) != where:
            continue
        words = command.split()
        reads = {w for i, w in enumerate(words)
                 if words[i - 1] != "--out" or "--resume" in words}  # --out: writes it
        for needs, producers in PREREQUISITES.items():
            if needs in reads and needs not in made and not glob.glob(needs):
                for producer in producers:
                    assert main(_argv(producer)) == 0, (producer, capsys.readouterr().err)
                made.add(needs)
        t0 = time.perf_counter()
        code = main(_argv(command))
        out, err = capsys.readouterr()
        if os.environ.get("DISLAB_DOCS_TIMES"):  # where the seconds go (DISLAB_DOCS_TIMES=1)
            with capsys.disabled():
                print(f"\n{time.perf_counter() - t0:6.1f} s  {command}")
        assert code == 0, f"`{command}` exited {code}:\n{err[-2000:]}"
        assert out.strip() or err.strip(), f"`{command}` said nothing"
        ran += 1
    return ran


@pytest.mark.parametrize("page", list(PAGES))
def test_page_commands_run_as_written(page: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ran = _run_page(page, PAGES[page], tmp_path, monkeypatch, capsys)
    assert ran == sum(c not in PARSE_ONLY and RUN_ONCE.get(c, page) == page
                      for c in PAGES[page])


def test_help_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # the train example writes the run folder that the resume and --config examples read
    order = sorted(HELP_EXAMPLES, key=lambda c: c != _TRAIN_X)
    assert _run_page("--help", order, tmp_path, monkeypatch, capsys) == sum(
        c not in PARSE_ONLY for c in order)


def test_tiny_is_inert_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from dislab.train import TrainConfig

    runs = [{"method": m, "run_id": f"{m}{s}"} for m in ("a", "b", "c") for s in (0, 1)]
    defaults = {"num_train": 10_000, "num_bins": 20, "sizes": (10, 100, 10_000)}
    monkeypatch.delenv("DISLAB_TINY", raising=False)
    for value in (None, "", "0"):
        if value is None:
            monkeypatch.delenv(tiny.ENV, raising=False)
        else:
            monkeypatch.setenv(tiny.ENV, value)
        assert not tiny.enabled()
        cfg = TrainConfig(model="beta_vae", steps=20_000)
        assert tiny.train_config(cfg).to_dict() == TrainConfig(model="beta_vae",
                                                               steps=20_000).to_dict()
        assert tiny.metric_params(defaults, {"num_bins": 5}) == {"num_bins": 5}
        assert tiny.study_runs(runs) == runs
        assert tiny.render_subset(("a", "b"), (3, 40), {"a": [1]}) == {"a": [1]}
        assert tiny.data_options("dsprites", None, {}) == {}
    import dislab.data as dd

    assert len(dd.load("dsprites")) == 737_280


def test_tiny_sizes_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from dislab.train import TrainConfig

    monkeypatch.setenv(tiny.ENV, "1")
    cfg = tiny.train_config(TrainConfig(model="beta_vae", steps=20_000, batch_size=64))
    assert (cfg.steps, cfg.batch_size) == (tiny.STEPS, tiny.BATCH)
    got = tiny.metric_params({"num_train": (10, 100, 1000), "num_test": 5000, "num_bins": 20},
                             {"num_test": 30})
    assert got == {"num_train": (10,), "num_test": 30}  # bins untouched, smaller kept
    assert tiny.metric_params({"num_train": (10,)}, {"num_train": (100, 1000)}) == {
        "num_train": (tiny.TRAIN_SIZE,)}  # a study's own sizes: one, the toy size
    runs = [{"method": m, "run_id": f"{m}{s}"} for m in ("a", "b", "c") for s in (0, 1)]
    assert [r["run_id"] for r in tiny.study_runs(runs)] == ["a0", "b0"]
    # a study's own dSprites grid gives way to the toy grid; other options stay
    thin = {"method": "a", "run_id": "t", "train": {
        "data": "dsprites", "data_options": {"positions": 16, "orientations": 10, "seed": 3}}}
    assert tiny.study_runs([thin])[0]["train"]["data_options"] == {"seed": 3}
    assert thin["train"]["data_options"]["positions"] == 16  # the spec's run is not changed
    assert tiny.render_subset(("a", "b"), (3, 40), {"a": [1]}) == {"a": [1], "b": [0, 39]}
    import dislab.data as dd

    assert len(dd.load("dsprites")) == 3 * 2 * 2 * 4 * 4
    assert len(dd.load("dsprites", subset={"shape": 1})) == 6 * 40 * 32 * 32  # chosen grid
