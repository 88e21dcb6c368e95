"""Study specifications: a YAML file naming what to train and how to score it.

A study is the cartesian product *data sets × (method, hyper-parameter point) × seeds*; every
element is one **run** (train one model, then evaluate it). The spec is a small YAML file.

Format (every key except ``methods`` is optional; defaults in brackets)::

    name: my_study                # [file name without .yaml] used in the report title
    description: free text        # [""]
    data:                         # [dsprites] list of data sets; each item is either a name
      - dsprites                  #   registered in dislab.data (`dislab data list`), or a mapping
      - name: dsprites            #   name:    data set name
        label: dsprites_noisy     #   label:   [name] how the data set is called in the table
        path: null                #   path:    [null = procedural/default] official file
        options: {noise: 0.1}     #   options: [{}] keyword options of dislab.data.load
    methods:                      # required: method name -> its sweep
      beta_vae:                   #   a method name registered in dislab.models (`dislab models`)
        grid:                     #   grid: mapping -> cartesian product of the value lists
          beta: [1, 2, 4, 6, 8, 16]   #   (a scalar counts as a one-value list), or a list of
        fixed: {}                 #   mappings = explicit points; fixed: [{}] hparams shared
      annealed_vae:               #   by every point of this method
        grid: {c_max: [5, 10, 25, 50, 75, 100]}
        fixed: {gamma: 1000, iteration_threshold: 100000}
    seeds: 3                      # [1] an int n (seeds 0..n-1) or an explicit list of ints
    steps: 300000                 # [300000] training steps per run (shared.gin)
    latent_dim: 10                # [10]
    batch_size: 64                # [64]
    metrics: null                 # [null = every metric of dislab.metrics] list of metric names
    metric_params:                # [{}] metric -> parameters overriding its defaults, e.g. to
      dci: {num_train: 1000}      #   score laptop-scale runs faster (`dislab metrics` lists them)
    eval_seed: run                # ["run" = the run's training seed] or a fixed int for all runs
    train: {lr: 0.0001}           # [{}] any other dislab.train.TrainConfig field (arch,
                                  #   reconstruction, lr, beta1, beta2, eps, device, ...)
    compat: default               # [default] or dlib: disentanglement_lib's settings (2019
                                  #   classifiers and booster for the metrics; FactorVAE
                                  #   trained steps/2 updates, as its double global-step
                                  #   count did); results carry the mode (docs/fidelity.md)

Command-line overrides (``dislab study plan|run``) scale a spec down without editing it:
``--steps N``, ``--seeds N`` and ``--data NAME[,NAME...]`` (keeps the listed data set labels, or
replaces the list when a name is not in the spec).

Built-in presets live in ``dislab/study/presets/*.yaml`` and are used by name:
``dislab study plan locatello2019``. Every bad key or value raises a
:class:`~dislab.errors.DislabError` naming the key and the fix.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dislab.errors import DislabError

__all__ = [
    "DataSpec",
    "MethodSpec",
    "StudySpec",
    "load_spec",
    "check_data_names",
    "parse_spec",
    "presets",
]

_TOP_KEYS = {
    "name", "description", "data", "methods", "seeds", "steps", "latent_dim", "batch_size",
    "metrics", "metric_params", "eval_seed", "train", "compat",
}
#: TrainConfig fields that the spec sets through its own keys (not through ``train:``).
_RESERVED_TRAIN = {"model", "data", "data_path", "data_options", "latent_dim", "hparams",
                   "steps", "batch_size", "seed", "out"}

@dataclass(frozen=True)
class DataSpec:
    """One data set of a study: registry ``name``, table ``label``, file ``path``, ``options``."""

    name: str
    label: str
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """One method of a study and its hyper-parameter points (each a dict name -> value)."""

    name: str
    points: tuple[dict[str, Any], ...]


@dataclass
class StudySpec:
    """A parsed, validated study (see the module docstring for the YAML format)."""

    name: str
    data: list[DataSpec]
    methods: list[MethodSpec]
    seeds: list[int]
    steps: int = 300_000
    latent_dim: int = 10
    batch_size: int = 64
    metrics: list[str] | None = None
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_seed: int | str = "run"
    train: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    compat: str = "default"

    @property
    def num_runs(self) -> int:
        """Number of runs: data sets × hyper-parameter points × seeds."""
        return len(self.data) * sum(len(m.points) for m in self.methods) * len(self.seeds)

    def scaled(self, steps: int | None = None, seeds: int | None = None,
               data: list[str] | None = None) -> StudySpec:
        """A copy with fewer ``steps``, the first ``seeds`` seeds, or other ``data`` sets."""
        out = copy.deepcopy(self)
        if steps is not None:
            out.steps = _positive_int(steps, "--steps")
        if seeds is not None:
            n = _positive_int(seeds, "--seeds")
            out.seeds = list(range(n)) if n > len(self.seeds) else self.seeds[:n]
        if data is not None:
            wanted = [d for d in data if d]
            if not wanted:
                raise DislabError("--data is empty; give one or more data set names, e.g. "
                                  "--data dsprites")
            by_label = {d.label: d for d in self.data}
            out.data = [by_label.get(d) or _parse_data(d, "--data") for d in wanted]
            _check_unique_labels(out.data)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that :func:`parse_spec` turns back into an equal spec."""
        return {
            "name": self.name,
            "description": self.description,
            "data": [{"name": d.name, "label": d.label, "path": d.path,
                      "options": dict(d.options)} for d in self.data],
            "methods": {m.name: {"grid": [dict(p) for p in m.points]} for m in self.methods},
            "seeds": list(self.seeds),
            "steps": self.steps,
            "latent_dim": self.latent_dim,
            "batch_size": self.batch_size,
            "metrics": None if self.metrics is None else list(self.metrics),
            "metric_params": {k: dict(v) for k, v in self.metric_params.items()},
            "eval_seed": self.eval_seed,
            "train": dict(self.train),
            "compat": self.compat,
        }


# -- loading --------------------------------------------------------------------------------

def presets() -> dict[str, Path]:
    """Built-in preset names -> their YAML files (``dislab/study/presets``)."""
    folder = resources.files("dislab.study").joinpath("presets")
    out: dict[str, Path] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = Path(str(entry))
    return dict(sorted(out.items()))


def load_spec(source: str | Path) -> StudySpec:
    """Read a spec from a YAML file path or a built-in preset name (e.g. ``locatello2019``)."""
    text_source = str(source)
    path = Path(text_source)
    if not path.exists():
        known = presets()
        if text_source in known:
            path = known[text_source]
        else:
            raise DislabError(
                f"No study spec file {text_source!r} and no preset of that name. Give a YAML "
                f"file path or one of the presets: {', '.join(known) or '(none)'}."
            )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DislabError(f"Study spec {path} is not valid YAML: {e}") from None
    return parse_spec(raw, default_name=path.stem)


def parse_spec(raw: Any, default_name: str = "study") -> StudySpec:
    """Validate a spec mapping (as read from YAML) and return a :class:`StudySpec`."""
    if not isinstance(raw, dict):
        raise DislabError("A study spec must be a YAML mapping with at least a 'methods' key "
                          "(see `dislab study plan --help` or docs/studies.md).")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise DislabError(f"Unknown study spec key(s) {sorted(unknown)}; known keys: "
                          f"{sorted(_TOP_KEYS)}.")
    if "methods" not in raw or not raw["methods"]:
        raise DislabError("The study spec has no 'methods': add e.g. "
                          "methods: {beta_vae: {grid: {beta: [1, 4]}}}.")
    name = str(raw.get("name") or default_name)
    data_raw = raw.get("data", ["dsprites"])
    if isinstance(data_raw, (str, dict)):
        data_raw = [data_raw]
    if not isinstance(data_raw, list) or not data_raw:
        raise DislabError("'data' must be a non-empty list of data set names or mappings "
                          "{name, label, path, options}.")
    data = [_parse_data(d, f"data[{i}]") for i, d in enumerate(data_raw)]
    _check_unique_labels(data)
    methods_raw = raw["methods"]
    if not isinstance(methods_raw, dict):
        raise DislabError("'methods' must be a mapping method name -> {grid: ..., fixed: ...}.")
    methods = [_parse_method(str(k), v) for k, v in methods_raw.items()]
    seeds = _parse_seeds(raw.get("seeds", 1))
    metrics = raw.get("metrics")
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = [metrics]
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise DislabError("'metrics' must be a list of metric names (see `dislab metrics`) "
                              "or null for all of them.")
        _check_metrics(metrics)
    metric_params = raw.get("metric_params") or {}
    if not isinstance(metric_params, dict) or not all(
            isinstance(v, dict) for v in metric_params.values()):
        raise DislabError("'metric_params' must map a metric name to a mapping of its "
                          "parameters, e.g. {dci: {num_train: 1000}}.")
    if metrics is not None:
        extra = sorted(set(metric_params) - set(metrics))
        if extra:
            raise DislabError(f"'metric_params' sets {extra}, which 'metrics' does not run; "
                              "add them to 'metrics' or remove their parameters.")
    _check_metrics(list(metric_params))
    eval_seed = raw.get("eval_seed", "run")
    if not (eval_seed == "run" or (isinstance(eval_seed, int) and not isinstance(eval_seed, bool)
                                   and eval_seed >= 0)):
        raise DislabError(f"'eval_seed' must be 'run' (the run's seed) or an int >= 0, "
                          f"not {eval_seed!r}.")
    train = raw.get("train") or {}
    if not isinstance(train, dict):
        raise DislabError("'train' must be a mapping of TrainConfig fields, e.g. {lr: 0.0001}.")
    clash = set(train) & _RESERVED_TRAIN
    if clash:
        raise DislabError(f"'train' sets {sorted(clash)}, which the spec sets itself: use the "
                          "top-level keys data, methods, seeds, steps, latent_dim, batch_size.")
    _check_train_fields(train)
    compat = raw.get("compat", "default")
    if compat not in ("default", "dlib"):
        raise DislabError(f"'compat' must be 'default' or 'dlib' (disentanglement_lib's "
                          f"settings), not {compat!r}.")
    return StudySpec(
        name=name,
        description=str(raw.get("description") or ""),
        data=data,
        methods=methods,
        seeds=seeds,
        steps=_positive_int(raw.get("steps", 300_000), "steps"),
        latent_dim=_positive_int(raw.get("latent_dim", 10), "latent_dim"),
        batch_size=_positive_int(raw.get("batch_size", 64), "batch_size"),
        metrics=metrics,
        metric_params={k: dict(v) for k, v in metric_params.items()},
        eval_seed=eval_seed,
        train=dict(train),
        compat=compat,
    )


# -- pieces ---------------------------------------------------------------------------------

def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        # YAML reads 3e5 as a string and 300_000 as an int; accept integral floats too.
        if isinstance(value, float) and value.is_integer() and value >= 1:
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d*)?[eE]\d+", value):
            number = float(value)
            if number.is_integer() and number >= 1:
                return int(number)
        raise DislabError(f"'{key}' must be a positive integer, not {value!r}.")
    return int(value)


def _parse_seeds(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(_positive_int(value, "seeds")))
    if isinstance(value, list) and value and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        if len(set(value)) != len(value):
            raise DislabError(f"'seeds' lists a seed twice: {value}; list each seed once.")
        return list(value)
    raise DislabError(f"'seeds' must be a positive int n (seeds 0..n-1) or a non-empty list of "
                      f"distinct ints >= 0, not {value!r}.")


def _parse_data(item: Any, where: str) -> DataSpec:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or "name" not in item:
        raise DislabError(f"{where}: a data set is a name or a mapping with 'name' "
                          "(and optional label, path, options).")
    unknown = set(item) - {"name", "label", "path", "options"}
    if unknown:
        raise DislabError(f"{where}: unknown key(s) {sorted(unknown)}; use name, label, path, "
                          "options.")
    name = str(item["name"]).lower().replace("-", "_")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise DislabError(f"{where}: 'options' must be a mapping of dislab.data.load options.")
    path = item.get("path")
    return DataSpec(name=name, label=str(item.get("label") or name),
                    path=None if path is None else str(path), options=dict(options))


def _check_unique_labels(data: list[DataSpec]) -> None:
    labels = [d.label for d in data]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DislabError(f"Data set label(s) {dup} appear twice; give each entry its own "
                          "'label' (e.g. label: dsprites_noisy).")


def check_data_names(spec: StudySpec) -> None:
    """Raise a clear error when a data set of ``spec`` is not registered in :mod:`dislab.data`.

    Separate from parsing so that a spec can be read (and planned) where a data set's module
    is not installed; ``dislab study plan`` and ``dislab study run`` call it before starting
    anything. A data file named by ``path`` must exist.
    """
    import difflib

    from dislab import data as data_module

    known = data_module.available()
    for d in spec.data:
        if d.name not in known:
            close = difflib.get_close_matches(d.name, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DislabError(f"Unknown data set {d.name!r} (label {d.label!r}) in the study."
                              f"{hint} Known data sets: {', '.join(known)} (see `dislab data "
                              "list`).")
        if d.path is not None and not Path(d.path).exists():
            raise DislabError(f"Data set {d.label!r}: the file {d.path!r} does not exist; fix "
                              "its 'path' in the spec (or leave it out to render the data set "
                              "procedurally, where dislab can).")


def _method_hparams(name: str) -> set[str]:
    """The method's hyper-parameter names, from the models registry."""
    from dislab import models

    if name not in models.names():
        raise DislabError(f"Unknown method {name!r} in 'methods'. Known methods: "
                          f"{', '.join(models.names())} (see `dislab models`).")
    return set(models.get(name).hparams)


def _parse_method(name: str, body: Any) -> MethodSpec:
    key = name.lower().replace("-", "_")
    allowed = _method_hparams(key)
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise DislabError(f"methods.{name}: expected a mapping {{grid: ..., fixed: ...}}, "
                          f"not {body!r}.")
    unknown = set(body) - {"grid", "fixed"}
    if unknown:
        raise DislabError(f"methods.{name}: unknown key(s) {sorted(unknown)}; use 'grid' "
                          "(values to sweep) and 'fixed' (values shared by every point).")
    fixed = body.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise DislabError(f"methods.{name}.fixed must be a mapping hparam -> value.")
    grid = body.get("grid")
    if grid is None or grid == {}:
        points: list[dict[str, Any]] = [{}]
    elif isinstance(grid, dict):
        names = list(grid)
        values = []
        for hp in names:
            v = grid[hp]
            v = v if isinstance(v, list) else [v]
            if not v:
                raise DislabError(f"methods.{name}.grid.{hp} is an empty list; give at least "
                                  "one value.")
            if len(v) != len(set(map(repr, v))):
                raise DislabError(f"methods.{name}.grid.{hp} lists a value twice: {v}.")
            values.append(v)
        points = [dict(zip(names, combo)) for combo in itertools.product(*values)]
    elif isinstance(grid, list) and grid and all(isinstance(p, dict) for p in grid):
        points = [dict(p) for p in grid]
        if len({repr(sorted(p.items())) for p in points}) != len(points):
            raise DislabError(f"methods.{name}.grid lists the same point twice.")
    else:
        raise DislabError(
            f"methods.{name}.grid must be a mapping hparam -> list of values (cartesian "
            f"product) or a non-empty list of mappings (explicit points), not {grid!r}."
        )
    full = [{**fixed, **p} for p in points]
    for p in full:
        for hp, v in p.items():
            if hp not in allowed:
                raise DislabError(
                    f"methods.{name}: unknown hyper-parameter {hp!r}; {key} has "
                    f"{', '.join(sorted(allowed)) or 'no hyper-parameters'} (see `dislab models`)."
                )
            if not isinstance(v, (int, float, str, bool)) or v is None:
                raise DislabError(f"methods.{name}.{hp} = {v!r}: values must be numbers, "
                                  "strings or booleans.")
        _check_point(name, key, p)
    return MethodSpec(name=key, points=tuple(full))


def _check_point(name: str, key: str, point: dict[str, Any]) -> None:
    """Type and range of each value of ``point`` (the method's ``HParam`` entries), so that
    ``study plan`` rejects what training would reject."""
    from dislab import models

    try:
        models.get(key).resolve_hparams(dict(point))
    except DislabError as e:
        raise DislabError(f"methods.{name}: {e}") from None


def _check_metrics(metrics: list[str]) -> None:
    from dislab import metrics as metrics_module

    known = metrics_module.names()
    bad = [m for m in metrics if m not in known]
    if bad:
        raise DislabError(f"Unknown metric(s) {bad} in 'metrics'. Known metrics: "
                          f"{', '.join(known)} (see `dislab metrics`).")


def _check_train_fields(train: dict[str, Any]) -> None:
    import dataclasses

    from dislab.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - names)
    if bad:
        raise DislabError(f"'train' has unknown TrainConfig field(s) {bad}; known: "
                          f"{', '.join(sorted(names - _RESERVED_TRAIN))}.")
