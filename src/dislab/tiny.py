"""Toy sizes for testing the documented commands (``DISLAB_TINY=1``); inert when unset.

With the environment variable ``DISLAB_TINY`` set to anything but ``""`` or ``"0"``, every
command runs its full code path at toy size, so that a test can run the README's and the
docs' commands exactly as written in seconds (``tests/test_docs_commands.py``). The results
are meaningless: this is a testing aid, never a way to train or evaluate. It is read at a few
central places only:

* :func:`dislab.data.load` renders the dSprites family on a toy sub-grid of the official
  values (:data:`DSPRITES_SUBSET`: 192 points) unless the call chooses a grid itself
  (:func:`data_options`);
* :func:`dislab.train.fit` trains at most :data:`STEPS` steps of at most :data:`BATCH`
  examples (:func:`train_config`; the saved ``config.json`` says so);
* :func:`dislab.metrics.run_metrics` caps the metrics' sample sizes (:func:`metric_params`;
  ``metrics.json`` records the sizes used);
* :func:`dislab.study.driver.run_study` runs at most :data:`STUDY_RUNS` runs, each of another
  method where it can, on the toy grid even where the study chooses a dSprites grid
  (:func:`study_runs`), and ``study plan`` times one step per method;
* local process pools start no processes: a study's local workers and the quickstart's
  seeds (:func:`dislab.study.backends.run_in_pool`) and the scoring of ``dislab evaluate
  RUN...`` (:func:`dislab.metrics.many.evaluate_runs`) run their jobs in this process, one
  after another (the pools themselves are tested at small sizes, not through this switch);
* ``dislab quickstart`` trains a fixed :data:`STEPS` steps instead of its time budget and
  compares its seeds on :data:`OBJECTIVE_PAIRS` held-out pairs;
* ``dislab data render`` keeps two values of every factor not already subset
  (:func:`render_subset`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ENV", "enabled", "data_options", "train_config", "metric_params", "study_runs",
           "render_subset"]

#: The environment variable that switches toy sizes on.
ENV = "DISLAB_TINY"
#: The procedural dSprites grid (evenly spaced official values per factor).
DSPRITES_SUBSET: dict[str, int] = {"shape": 3, "scale": 2, "orientation": 2, "posX": 4,
                                   "posY": 4}
_DSPRITES = ("dsprites", "dsprites_full", "dsprites_noshape", "color_dsprites",
             "noisy_dsprites", "scream_dsprites")
_GRID_OPTIONS = ("shapes", "scales", "orientations", "positions", "subset")
#: Training steps and batch size at most.
STEPS = 3
BATCH = 8
#: The one training-set size a downstream task keeps (its cross-validated fits at larger
#: sizes took most of a toy evaluation's time).
TRAIN_SIZE = 10
#: Held-out pairs on which the quickstart compares its seeds.
OBJECTIVE_PAIRS = 64
#: Runs of a study at most.
STUDY_RUNS = 2
#: Metric sample-size parameters (registered defaults' names) -> their cap.
METRIC_CAPS: dict[str, int] = {
    "num_train": 100, "num_test": 50, "num_eval": 20, "num_variance_estimate": 200,
    "batch_size": 8, "num_samples": 200, "max_components": 200, "sep_samples": 100,
    "sep_components": 200, "official_samples": 200, "num_minibatches": 2,
    "minibatch_size": 16, "num_test_points_per_class": 10, "n_experiment": 2,
}


def enabled() -> bool:
    """Whether ``DISLAB_TINY`` asks for toy sizes."""
    return os.environ.get(ENV, "").strip() not in ("", "0")


def data_options(key: str, path: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of :func:`dislab.data.load` with :data:`DSPRITES_SUBSET` added for a
    rendered dSprites-family set that sets no grid option (``options`` as given when toy
    sizes are off, for a file or for another data set)."""
    if (enabled() and path is None and key in _DSPRITES
            and not any(k in options for k in _GRID_OPTIONS)):
        return {**options, "subset": dict(DSPRITES_SUBSET)}
    return options


def train_config(cfg: Any) -> Any:
    """``cfg`` (a :class:`~dislab.train.TrainConfig`) with at most :data:`STEPS` steps and
    :data:`BATCH` examples a batch, checkpoints and logs every step and images only at the
    end; ``cfg`` itself unchanged when toy sizes are off."""
    if not enabled():
        return cfg
    cfg.steps = min(int(cfg.steps), STEPS)
    cfg.batch_size = min(int(cfg.batch_size), BATCH)
    cfg.checkpoint_every = 1
    cfg.log_every = 1
    cfg.image_every = 0
    return cfg


def metric_params(defaults: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's keyword arguments with its sample sizes capped (:data:`METRIC_CAPS`; a tuple
    of training sizes, the downstream tasks', keeps one: its smallest, at most
    :data:`TRAIN_SIZE`); ``kwargs`` as given when toy sizes are off."""
    out = dict(kwargs)
    if not enabled():
        return out
    for name, default in defaults.items():
        if name not in METRIC_CAPS:
            continue
        cap = METRIC_CAPS[name]
        value = out.get(name, default)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[name] = min(value, cap)
        elif isinstance(value, (tuple, list)) and value and all(isinstance(v, int)
                                                                for v in value):
            out[name] = (min(min(value), cap, TRAIN_SIZE),)
    return out


def study_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most :data:`STUDY_RUNS` of ``runs``, the first of each method first, with the grid
    options of a rendered dSprites-family set removed so that it gets the toy grid (all of
    them, as given, when toy sizes are off)."""
    runs = list(runs)
    if not enabled():
        return runs
    first: dict[str, dict[str, Any]] = {}
    for run in runs:
        first.setdefault(run.get("method", ""), run)
    chosen = list(first.values())[:STUDY_RUNS]
    chosen += [r for r in runs if r not in chosen][:STUDY_RUNS - len(chosen)]
    out = []
    for run in runs:  # in the study's order
        if run not in chosen:
            continue
        train = run.get("train", {})
        if train.get("data") in _DSPRITES and not train.get("data_path"):
            options = {k: v for k, v in (train.get("data_options") or {}).items()
                       if k not in _GRID_OPTIONS}
            run = {**run, "train": {**train, "data_options": options}}
        out.append(run)
    return out


def render_subset(names: Sequence[str], sizes: Sequence[int],
                  subset: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """``subset`` plus the first and last value of every other factor (``subset`` as given
    when toy sizes are off)."""
    out = {k: list(v) for k, v in subset.items()}
    if enabled():
        for name, size in zip(names, sizes):
            out.setdefault(name, sorted({0, int(size) - 1}))
    return out
