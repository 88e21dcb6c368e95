"""Bad input to training, resuming, study specs and the CLI (issue 20): each case gets one
DislabError naming the value or file and the fix, no traceback from the CLI, and nothing
half-written (a corrected command then works as is)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dislab.data.show as show_module
from dislab import models
from dislab.cli import main
from dislab.errors import DislabError
from dislab.status import effective_status, read_status
from dislab.study.plan import estimate, eval_seconds, expand
from dislab.study.spec import parse_spec
from dislab.train import TrainConfig, fit
from train_helpers import cfg  # registers the tiny data set and test methods

TINY = ["--data", "test_squares16", "--steps", "4", "--batch-size", "8", "--log-every", "2",
        "--checkpoint-every", "2", "--image-every", "0", "--compile", "off", "--threads", "1",
        "--no-tensorboard", "--quiet"]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


# -- dislab train: bad hyper-parameters and configs ----------------------------------------
TRAIN_CASES = [
    (["--model", "beta_vae", "--beta", "abc"], ["beta='abc'", "finite number >= 0"]),
    (["--model", "beta_vae", "--beta", "nan"], ["beta='nan'", "finite number >= 0"]),
    (["--model", "beta_vae", "--beta", "inf"], ["beta='inf'", "finite number >= 0"]),
    (["--model", "beta_vae", "--hparam", "beta=abc"], ["beta='abc'"]),
    (["--model", "beta_vae", "--beta", "-1"], ["beta=-1", ">= 0", "default 4.0"]),
    (["--model", "beta_tcvae", "--beta", "-2"], ["beta=-2", "beta_tcvae"]),
    (["--model", "factor_vae", "--gamma", "-5"], ["gamma=-5", "factor_vae"]),
    (["--model", "dip_vae_i", "--lambda-od", "-1"], ["lambda_od=-1", ">= 0"]),
    (["--model", "beta_tcvae", "--estimator", "foo"], ["estimator='foo'", "'mws', 'mss'"]),
    (["--model", "annealed_vae", "--iteration-threshold", "0"],
     ["iteration_threshold=0", "an integer >= 1"]),
    (["--model", "annealed_vae", "--iteration-threshold", "2.5"], ["iteration_threshold=2.5"]),
    (["--model", "factor_vae", "--disc-beta1", "1"], ["disc_beta1=1", "[0, 1)"]),
    (["--model", "slow_vae", "--rate", "0"], ["rate=0", "> 0"]),
    (["--model", "pcl", "--learn-a", "3"], ["learn_a=3", "true or false"]),
    (["--model", "beta_vae", "--gamma", "3"], ["--gamma belongs to", "not a hyper-parameter"]),
    (["--model", "nope"], ["Unknown model 'nope'"]),
    (["--model", "beta_vae", "--lr", "-1"], ["lr=-1.0", "positive"]),
    # caught while the data set is opened, after the folder was made: it is removed again
    (["--model", "beta_vae", "--data", "dsprits", "--steps", "2"],
     ["Unknown data set 'dsprits'"]),
    (["--model", "beta_vae", "--data", "dsprites", "--data-option", "orientations=0",
      "--steps", "2"], ["orientation must keep 1..40 values"]),
]


@pytest.mark.parametrize("argv,words", TRAIN_CASES,
                         ids=[" ".join(a[1:]) for a, _ in TRAIN_CASES])
def test_cli_train_rejects_bad_values_before_writing(argv: list[str], words: list[str],
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", *argv, *TINY, "--out", str(out)]
    if "--steps" in argv:
        args = ["train", *argv, "--out", str(out)]
    rc, err = _cli(args, capsys)
    assert rc == 2
    assert err.startswith("dislab: error: ") and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()  # nothing written: the corrected command starts cleanly


def test_corrected_command_runs_after_a_rejected_one(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc, _ = _cli(["train", "--model", "beta_vae", "--beta", "abc", *TINY, "--out", str(out)],
                 capsys)
    assert rc == 2
    assert main(["train", "--model", "beta_vae", "--beta", "4", *TINY, "--out", str(out)]) == 0
    assert json.loads((out / "status.json").read_text())["status"] == "done"


CONFIG_CASES = [
    ("missing.json", None, ["does not exist"]),
    ("broken.json", "{not json", ["not valid JSON"]),
    ("unknown.json", {"model": "beta_vae", "stepz": 3}, ["'stepz'", "did you mean 'steps'"]),
    ("string_beta.json", {"model": "beta_vae", "hparams": {"beta": "4"}},
     ["beta='4'", "without quotes"]),
    ("zero_steps.json", {"model": "beta_vae", "steps": 0}, ["steps=0", "integer >= 1"]),
]


@pytest.mark.parametrize("name,content,words", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_cli_train_rejects_bad_config_files(name: str, content: object, words: list[str],
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "run"
    rc, err = _cli(["train", "--config", str(path), "--out", str(out)], capsys)
    assert rc == 2 and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()


# -- the Python API --------------------------------------------------------------------------
PY_CASES = [
    ({"beta": "4"}, "beta='4'"),
    ({"beta": float("nan")}, "beta=nan"),
    ({"beta": float("inf")}, "beta=inf"),
    ({"beta": -0.5}, "beta=-0.5"),
    ({"beta": None}, "beta=None"),
    ({"beta": [4]}, "beta=[4]"),
]


@pytest.mark.parametrize("hparams,words", PY_CASES, ids=[repr(h) for h, _ in PY_CASES])
def test_python_fit_rejects_bad_hparams_before_training(hparams: dict, words: str,
                                                        tmp_path: Path) -> None:
    with pytest.raises(DislabError) as info:
        fit(cfg(tmp_path, hparams=hparams), progress=False)
    assert words in str(info.value) and "finite number >= 0" in str(info.value)
    assert "loss became" not in str(info.value)  # not mistaken for a NaN loss
    assert not (tmp_path / "run").exists()
    with pytest.raises(DislabError, match="Hyper-parameter"):
        TrainConfig(model="beta_vae", hparams=hparams).validate()


def test_hparam_types_and_ranges_are_declared_for_every_method() -> None:
    """Every hyper-parameter of every method has a type, accepts its own default, and every
    weight that the papers define as non-negative rejects a negative value."""
    for name, cls in models.available().items():
        if name.startswith("test_"):
            continue
        for key, hp in cls.hparams.items():
            assert hp.type in (int, float, bool, str), (name, key)
            assert hp.check(key, hp.default) == hp.default
            if hp.type is float:
                assert hp.low is not None, f"{name}.{key} has no lower bound"
                with pytest.raises(DislabError):
                    hp.check(key, -1.0, name)
                with pytest.raises(DislabError):
                    hp.check(key, math.nan, name)
            if hp.type is str:
                assert hp.choices and hp.default in hp.choices, (name, key)


# -- resuming ----------------------------------------------------------------------------------
def _tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "runs" / "x"
    assert main(["train", "--model", "beta_vae", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_resume_from_the_run_folder_alone(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """README: `dislab train --out runs/x --resume` continues the run in runs/x."""
    run = _tiny_run(tmp_path, capsys)
    assert main(["train", "--out", str(run), "--resume", "--steps", "6", "--quiet"]) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["step"] == 6
    steps = [json.loads(x)["step"] for x in (run / "history.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_resume_with_a_run_config_from_another_folder(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The saved 'out' is relative to where the run started; resuming through the run's own
    config.json from elsewhere continues that run instead of starting one under cwd."""
    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "x"
    assert main(["train", "--model", "beta_vae", *TINY, "--out", str(run)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--config", str(tmp_path / run / "config.json"), "--resume",
                 "--steps", "6", "--quiet"]) == 0
    assert list(elsewhere.iterdir()) == []  # no new run here
    assert json.loads((tmp_path / run / "status.json").read_text())["step"] == 6


@pytest.mark.parametrize("argv,words", [
    (["--out", "{tmp}/typo", "--resume"], ["Nothing to resume", "typo", "no config.json"]),
    (["--resume"], ["--resume needs the run folder"]),
    (["--model", "beta_vae", "--out", "{tmp}/typo", "--resume"], ["Nothing to resume"]),
])
def test_resume_with_nothing_to_resume_says_so(argv: list[str], words: list[str],
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc, err = _cli(["train", *argv, *TINY], capsys)  # tiny, should it ever train
    assert rc == 2 and "Traceback" not in err
    for w in words:
        assert w in err
    assert not (tmp_path / "typo").exists()


def test_run_that_failed_before_its_first_checkpoint_accepts_a_new_config(
        tmp_path: Path) -> None:
    with pytest.raises(DislabError, match="loss became nan"):
        fit(cfg(tmp_path, model="test_nan_after", hparams={"nan_at": 0},
                checkpoint_every=100), progress=False)
    assert read_status(tmp_path / "run")["status"] == "failed"
    run = fit(cfg(tmp_path, steps=4), progress=False)  # the corrected command, no --resume
    assert json.loads((run / "status.json").read_text())["status"] == "done"


def test_status_records_process_and_a_killed_run_reads_interrupted(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=4), progress=False)
    status = json.loads((run / "status.json").read_text())
    assert status["pid"] == os.getpid() and isinstance(status["heartbeat"], float)
    # a run killed by SIGKILL: the file still says running, with a pid that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (run / "status.json").write_text(json.dumps({**status, "status": "running",
                                                 "pid": int(dead)}))
    assert effective_status(json.loads((run / "status.json").read_text())) == "interrupted"
    assert read_status(run)["status"] == "interrupted"
    # a live process on this host training the folder: a second trainer is refused
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "status.json").write_text(json.dumps({**status, "status": "running",
                                                     "pid": live.pid}))
        assert read_status(run)["status"] == "running"
        with pytest.raises(DislabError, match="being trained by another process"):
            fit(cfg(tmp_path, steps=6), progress=False, resume=True)
    finally:
        live.kill()
        live.wait()
    assert read_status(run)["status"] == "interrupted"
    run = fit(cfg(tmp_path, steps=6), progress=False, resume=True)
    assert json.loads((run / "status.json").read_text())["step"] == 6


def test_a_stale_heartbeat_on_another_host_reads_interrupted() -> None:
    base = {"status": "running", "pid": 1, "host": "elsewhere", "heartbeat": 1000.0}
    assert effective_status(base, now=1000.0 + 60) == "running"
    assert effective_status(base, now=1000.0 + 3600) == "interrupted"
    assert effective_status({**base, "status": "done"}, now=1e12) == "done"


# -- study specs and `study plan` ---------------------------------------------------------------
SPEC_CASES = [
    ("methods: {beta_vae: {grid: {beta: [abc, 4]}}}", ["beta='abc'", "finite number"]),
    ("methods: {beta_vae: {grid: {beta: [-1, 4]}}}", ["beta=-1", ">= 0"]),
    ("methods: {beta_vae: {fixed: {beta: .nan}}}", ["beta=nan"]),
    ("methods: {dip_vae_i: {grid: {lambda_od: [-2]}}}", ["lambda_od=-2"]),
    ("methods: {beta_tcvae: {grid: {estimator: [mws, bad]}}}", ["estimator='bad'"]),
    ("data: [dsprits]\nmethods: {beta_vae: {}}", ["Unknown data set 'dsprits'",
                                                   "Did you mean 'dsprites'?"]),
    ("data: [{name: dsprites, path: /no/such/file.npz}]\nmethods: {beta_vae: {}}",
     ["/no/such/file.npz", "does not exist"]),
]


@pytest.mark.parametrize("text,words", SPEC_CASES, ids=[t[:40] for t, _ in SPEC_CASES])
def test_study_plan_checks_what_study_run_checks(text: str, words: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dislab.study import backends

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("study run started runs despite the bad spec")

    monkeypatch.setitem(backends.BACKENDS, "local", no_run)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    for command in (["study", "plan", str(spec), "--no-measure"],
                    ["study", "run", str(spec), "--out", str(tmp_path / "study"),
                     "--steps", "1"]):
        rc, err = _cli(command, capsys)
        assert rc == 2 and "Traceback" not in err, err
        for w in words:
            assert w in err, (w, err)
    assert not (tmp_path / "study").exists()


def test_study_plan_rejects_bad_workers(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(["study", "plan", "small_dsprites", "--workers", "0", "--no-measure"], capsys)
    assert rc == 2 and "--workers must be >= 1" in err


def test_plan_evaluation_estimate_follows_the_metrics() -> None:
    def spec(metrics: list[str] | None) -> list[dict]:
        return expand(parse_spec({"methods": {"beta_vae": {"grid": {"beta": [1, 4]}}},
                                  "metrics": metrics}))

    two = estimate(spec(["mig", "sap"]), workers=1, measure=False)
    full = estimate(spec(None), workers=1, measure=False)
    one_intervention = estimate(spec(["beta_vae"]), workers=1, measure=False)
    assert two["eval_seconds_per_run"] < one_intervention["eval_seconds_per_run"]
    assert one_intervention["eval_seconds_per_run"] < full["eval_seconds_per_run"]
    assert full["seconds"] - two["seconds"] == pytest.approx(
        2 * (full["eval_seconds_per_run"] - two["eval_seconds_per_run"]))
    # the intervention metrics look up the whole grid: encoding grows with its size
    assert eval_seconds(["beta_vae"], 737_280) > eval_seconds(["beta_vae"], 46_080)
    assert eval_seconds(["mig"], 737_280) == eval_seconds(["mig"], 500_000)


def test_one_value_grid_run_id_names_its_value() -> None:
    runs = expand(parse_spec({"methods": {"dip_vae_i": {"grid": {"lambda_od": [1]}},
                                          "beta_vae": {"grid": {"beta": [1, 4]}},
                                          "factor_vae": {}}}))
    ids = [r["run_id"] for r in runs]
    assert "-dip_vae_i-lambda_od=1-s0-" in ids[0]
    assert "-beta_vae-beta=1-s0-" in ids[1] and "-beta_vae-beta=4-s0-" in ids[2]
    assert "-factor_vae-default-s0-" in ids[3]  # only a run with no values set is "default"


# -- smaller CLI things ------------------------------------------------------------------------
def test_data_show_draws_steps_values_per_sweep(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    real = show_module.sweep_factors

    def spy(data, base, j, steps):  # type: ignore[no-untyped-def]
        asked.append(steps)
        return real(data, base, j, steps)

    monkeypatch.setattr(show_module, "sweep_factors", spy)
    assert main(["data", "show", "dsprites", "--samples", "16", "--steps", "3", "--out",
                 str(tmp_path / "g.png")]) == 0
    assert asked and set(asked) == {3}


def test_data_show_rejects_zero_steps(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(["data", "show", "dsprites", "--steps", "0", "--out",
                    str(tmp_path / "g.png")], capsys)
    assert rc == 2 and "steps=0" in err and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_cli_start_up_imports_no_heavy_module(argv: list[str]) -> None:
    code = "\n".join([
        "import sys", "from dislab.cli import main", "try:", f"    main({argv!r})",
        "except SystemExit:", "    pass",
        "heavy = [m for m in ('torch', 'numba', 'matplotlib', 'pandas', 'scipy')"
        " if m in sys.modules]", "print('HEAVY', heavy)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert "HEAVY []" in out, out


def test_lazy_command_table_matches_the_modules() -> None:
    from dislab.cli import COMMANDS, build_parser

    parser = build_parser()  # every module registered
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {a.dest: a.help for a in sub._choices_actions} == \
        {k: v[1] for k, v in COMMANDS.items()}
    assert not any(getattr(p, "_dislab_placeholder", False) for p in sub.choices.values())
