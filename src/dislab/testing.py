"""Contract checks for data sets and methods, in the style of scikit-learn's
``check_estimator`` (``sklearn/utils/estimator_checks.py``).

A new entry is registered with one decorator; these checks exercise everything the rest of
dislab relies on, so the entry is tested the moment it exists:

>>> from dislab.testing import check_dataset, check_method
>>> check_dataset("dsprites", subset={"shape": 3, "scale": 2, "orientation": 2,
...                                   "posX": 4, "posY": 4})      # doctest: +SKIP
>>> check_method("beta_vae")                                      # doctest: +SKIP

Each returns ``{check name: "passed" | "skipped: <why>"}`` and raises :class:`ContractError`
(an ``AssertionError``) naming the entry, the check and what was wrong at the first failure.
The repository's own test suite runs both over every registered name
(``tests/test_contracts.py``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dislab.errors import DislabError

__all__ = ["ContractError", "check_dataset", "check_method", "tiny_squares"]


class ContractError(AssertionError):
    """A registered data set or method breaks the contract the rest of dislab relies on."""


def _require(ok: Any, entry: str, check: str, message: str) -> None:
    if not ok:
        raise ContractError(f"{entry}: check {check!r} failed: {message}")


# -- data sets ---------------------------------------------------------------------------------
#: Most indices the grid checks visit one by one (all of them on a grid this small or smaller).
MAX_INDICES = 512


def _loader(data: Any, path: str | None, options: dict[str, Any]
            ) -> tuple[Any, Callable[[], Any] | None]:
    """``(data set, a function that builds a fresh equal one or None)``."""
    import dislab.data as dd

    if isinstance(data, str):
        def make() -> Any:
            return dd.load(data, path=path, **options)
    elif isinstance(data, dd.GroundTruthData):
        if path is not None or options:
            raise DislabError("check_dataset: path and options are for a name, a class or a "
                              "factory; a data set object is checked as it is.")
        return data, None
    elif callable(data):
        def make() -> Any:
            return data(**({"path": path} if path is not None else {}), **options)
    else:
        raise DislabError(f"check_dataset takes a registered name, a GroundTruthData, its "
                          f"class or a factory; got {type(data).__name__}.")
    first = make()
    if not isinstance(first, dd.GroundTruthData):
        raise ContractError(f"{data!r} built a {type(first).__name__}, not a "
                            "dislab.data.GroundTruthData.")
    return first, make


def _probe_indices(data: Any, seed: int) -> np.ndarray:
    """Every index of a small data set; else the first, the last and random ones."""
    n = len(data)
    if n <= MAX_INDICES:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rest = rng.integers(1, n - 1, size=MAX_INDICES - 2, dtype=np.int64)
    return np.concatenate([[0], rest, [n - 1]]).astype(np.int64)


def check_dataset(data: Any, path: str | None = None, seed: int = 0,
                  **options: Any) -> dict[str, str]:
    """Run the data set contract on ``data``: a registered name (loaded with
    :func:`dislab.data.load` and ``path``/``options``), a :class:`~dislab.data.GroundTruthData`
    subclass or factory (called with ``path``/``options``), or a data set object.

    Checked: factor names and sizes agree; ``len`` is the grid size; index <-> factors round
    trip; observations have the declared shape, ``float32`` in [0, 1] and agree with the
    ``uint8`` form; the same index gives the same observation (in any batch order, and from a
    freshly built data set unless an object was given); seeded sampling and ``batches`` are
    reproducible and show the sampled points; intervention sampling (BetaVAE / FactorVAE
    scores) keeps the shared factor; pair sampling (:mod:`dislab.data.pairs`) on grids.
    Keep the grid small (a few hundred points): some checks visit every index.
    Returns ``{check: "passed" | "skipped: why"}``; raises :class:`ContractError`.
    """
    obj, make = _loader(data, path, dict(options))
    entry = f"data set {getattr(obj, 'name', data)!r}"
    out: dict[str, str] = {}
    checks: list[tuple[str, Callable[..., str | None]]] = [
        ("factors_declared", _data_factors_declared),
        ("grid_size", _data_grid_size),
        ("index_round_trip", _data_index_round_trip),
        ("observations", _data_observations),
        ("determinism", _data_determinism),
        ("sampling", _data_sampling),
        ("batches", _data_batches),
        ("interventions", _data_interventions),
        ("pairs", _data_pairs),
    ]
    for name, fn in checks:
        skipped = fn(obj, entry, name, seed, make)
        out[name] = "passed" if skipped is None else f"skipped: {skipped}"
    return out


def _data_factors_declared(data: Any, entry: str, check: str, seed: int, make: Any) -> None:
    names, sizes, shape = data.factor_names, data.factor_sizes, data.observation_shape
    _require(isinstance(names, tuple) and all(isinstance(n, str) and n for n in names),
             entry, check, f"factor_names must be a tuple of names, got {names!r}")
    _require(len(set(names)) == len(names), entry, check, f"factor names repeat: {names}")
    _require(isinstance(sizes, tuple) and len(sizes) == len(names), entry, check,
             f"{len(names)} factor names but factor_sizes {sizes!r}")
    _require(all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes), entry, check,
             f"factor sizes must be positive integers, got {sizes!r}")
    _require(data.num_factors == len(sizes), entry, check, "num_factors != len(factor_sizes)")
    _require(isinstance(shape, tuple) and len(shape) in (1, 3)
             and all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape), entry, check,
             f"observation_shape must be (C, H, W) or (D,), got {shape!r}")
    d = data.describe()
    _require(d["factor_names"] == list(names) and d["factor_sizes"] == list(sizes)
             and d["observation_shape"] == list(shape) and d["num_images"] == len(data),
             entry, check, f"describe() disagrees with the attributes: {d}")


def _data_grid_size(data: Any, entry: str, check: str, seed: int, make: Any) -> str | None:
    if not data.is_grid:
        _require(len(data) >= 1, entry, check, "no rows")
        return "labelled rows, not a full grid (len is the number of rows)"
    _require(len(data) == math.prod(data.factor_sizes), entry, check,
             f"len {len(data)} != product of factor sizes {data.factor_sizes}")
    return None


def _data_index_round_trip(data: Any, entry: str, check: str, seed: int, make: Any
                           ) -> str | None:
    idx = _probe_indices(data, seed)
    f = data.factors(idx)
    _require(f.shape == (len(idx), data.num_factors) and f.dtype == np.int64, entry, check,
             f"factors(index) must be (n, {data.num_factors}) int64, got {f.shape} {f.dtype}")
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    _require(np.all((f >= 0) & (f < sizes)), entry, check, "factors outside 0..size-1")
    if data.num_factors == 0:
        return "no factors to index by"
    back = data.index(f)
    if data.is_grid:
        _require(np.array_equal(back, idx), entry, check, "index(factors(i)) != i")
        if len(data) <= MAX_INDICES:
            _require(len(np.unique(f, axis=0)) == len(data), entry, check,
                     "two grid indices have the same factors")
        g = data.sample_factors(64, np.random.default_rng(seed))
        _require(np.array_equal(data.factors(data.index(g)), g), entry, check,
                 "factors(index(f)) != f")
    else:  # labelled rows: index() finds the first row with these factors
        _require(np.array_equal(data.factors(back), f), entry, check,
                 "the row index(factors) finds has other factors")
    return None


def _data_observations(data: Any, entry: str, check: str, seed: int, make: Any) -> None:
    idx = _probe_indices(data, seed)[:64]
    x = data.images_from_index(idx)
    _require(x.shape == (len(idx), *data.observation_shape), entry, check,
             f"images_from_index gave {x.shape}, declared {(len(idx), *data.observation_shape)}")
    _require(x.dtype == np.float32, entry, check, f"observations must be float32, got {x.dtype}")
    _require(np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0, entry, check,
             f"observations must lie in [0, 1], got [{x.min()}, {x.max()}]")
    if data.num_factors:
        f = data.factors(idx)
        _require(np.array_equal(data.images(f), data.images_from_index(data.index(f))),
                 entry, check, "images(factors) != images_from_index(index(factors))")
    if data.is_image:
        u = data.images_uint8_from_index(idx)
        _require(u.dtype == np.uint8 and u.shape == x.shape, entry, check,
                 f"images_uint8 must be uint8 {x.shape}, got {u.dtype} {u.shape}")
        _require(np.abs(u.astype(np.float32) / 255.0 - x).max() <= 0.5 / 255 + 1e-6, entry,
                 check, "images_uint8 / 255 differs from images by more than rounding")


def _data_determinism(data: Any, entry: str, check: str, seed: int, make: Any
                      ) -> str | None:
    idx = _probe_indices(data, seed)[:32]
    rng = np.random.default_rng(seed)
    idx = np.concatenate([idx, rng.integers(0, len(data), size=8)])  # repeats included
    x = data.images_from_index(idx)
    _require(np.array_equal(x, data.images_from_index(idx)), entry, check,
             "the same indices gave other observations the second time")
    rev = data.images_from_index(idx[::-1])[::-1]
    _require(np.array_equal(x, rev), entry, check, "observations depend on the batch order")
    half = len(idx) // 2
    parts = np.concatenate([data.images_from_index(idx[:half]),
                            data.images_from_index(idx[half:])])
    _require(np.array_equal(x, parts), entry, check, "observations depend on the batch split")
    if make is None:
        return "fresh-instance comparison needs a name or a factory"
    _require(np.array_equal(x, make().images_from_index(idx)), entry, check,
             "a freshly built data set gives other observations for the same indices")
    return None


def _data_sampling(data: Any, entry: str, check: str, seed: int, make: Any) -> None:
    from dislab.data import as_rng

    n = 64
    f1, f2 = data.sample_factors(n, seed), data.sample_factors(n, seed)
    _require(np.array_equal(f1, f2), entry, check, "sample_factors(n, seed) is not reproducible")
    _require(f1.shape == (n, data.num_factors) and f1.dtype == np.int64, entry, check,
             f"sample_factors gave {f1.shape} {f1.dtype}")
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    _require(np.all((f1 >= 0) & (f1 < sizes)), entry, check, "sampled factors out of range")
    i1 = data.sample_index(n, as_rng(seed))
    _require(np.array_equal(i1, data.sample_index(n, seed)) and i1.shape == (n,), entry, check,
             "sample_index(n, seed) is not reproducible or not (n,)")
    _require(i1.min() >= 0 and i1.max() < len(data), entry, check, "sampled index out of range")
    if len(data) > 1:
        _require(not np.array_equal(i1, data.sample_index(n, seed + 1)), entry, check,
                 "two seeds drew the same 64 indices")
    f, x = data.sample(8, seed)
    _require(np.array_equal(f, data.sample_factors(8, seed)), entry, check,
             "sample(n, seed) draws other factors than sample_factors(n, seed)")
    if data.is_grid:
        _require(np.array_equal(x, data.images(f)), entry, check,
                 "sample(n) observations != images(its factors)")
    else:  # labelled rows: the drawn rows' own observations, not the first row with f
        _require(np.array_equal(x, data.images_from_index(data.sample_index(8, seed))),
                 entry, check, "sample(n, seed) observations are not those of the rows "
                 "sample_index(n, seed) draws")


def _data_batches(data: Any, entry: str, check: str, seed: int, make: Any) -> None:
    a = [b.numpy() for b in data.batches(batch_size=4, seed=seed, num_batches=2)]
    b = [b.numpy() for b in data.batches(batch_size=4, seed=seed, num_batches=2)]
    _require(len(a) == 2 and all(np.array_equal(p, q) for p, q in zip(a, b)), entry, check,
             "batches(seed=...) is not reproducible")
    first = a[0]
    _require(first.shape == (4, *data.observation_shape) and first.dtype == np.float32,
             entry, check, f"a batch is {first.shape} {first.dtype}")
    _require(first.min() >= 0.0 and first.max() <= 1.0, entry, check, "a batch leaves [0, 1]")
    idx = data.sample_index(4, seed)
    # image data sets travel as uint8 (images_uint8 / 255), vectors as float32
    want = (data.images_uint8_from_index(idx).astype(np.float32) / np.float32(255.0)
            if data.is_image else data.images_from_index(idx))
    _require(np.abs(first - want).max() <= 1e-6, entry, check,
             "the first batch of batches(seed) is not the observations of "
             "sample_index(B, seed)")


def _data_interventions(data: Any, entry: str, check: str, seed: int, make: Any
                        ) -> str | None:
    if data.num_factors == 0:
        return "no factors"
    check_int = getattr(data, "check_interventions", None)
    if check_int is not None:
        try:
            check_int()
        except DislabError as e:
            return f"the data set refuses interventions ({e})"
    k = np.arange(data.num_factors, dtype=np.int64)
    a, b = data.sample_index_pairs(k, 4, np.random.default_rng(seed))
    _require(a.shape == b.shape == (4 * len(k),), entry, check, "sample_index_pairs shape")
    fa, fb = data.factors(a), data.factors(b)
    rows = np.arange(len(a))
    _require(np.array_equal(fa[rows, k.repeat(4)], fb[rows, k.repeat(4)]), entry, check,
             "sample_index_pairs: a pair does not share its factor k")
    fix = data.sample_index_fixing(k, 4, np.random.default_rng(seed))
    ff = data.factors(fix).reshape(len(k), 4, -1)
    _require(all(np.all(ff[i, :, j] == ff[i, 0, j]) for i, j in enumerate(k)), entry, check,
             "sample_index_fixing: a batch does not share the value of its factor k")
    return None


def _data_pairs(data: Any, entry: str, check: str, seed: int, make: Any) -> str | None:
    from dislab.data import pairs

    if not data.is_grid:
        return "pairs are sampled on a full grid (labelled rows may lack the second point)"
    fixed = pairs.resolve_fixed_factors(data)
    movable = ~fixed & (np.asarray(data.factor_sizes) > 1)
    if not movable.any():
        return "no factor can change"
    f, x = pairs.sample_pairs(data, 16, seed)
    f2, _ = pairs.sample_pairs(data, 16, seed)
    _require(np.array_equal(f, f2), entry, check, "sample_pairs(seed) is not reproducible")
    _require(f.shape == (16, 2, data.num_factors), entry, check, f"pair factors {f.shape}")
    _require(x.shape == (16, 2, *data.observation_shape), entry, check, f"pairs {x.shape}")
    _require(np.all(np.any(f[:, 0] != f[:, 1], axis=1)), entry, check,
             "a pair has the same factors twice (at least one factor must change)")
    _require(np.all(f[:, 0, fixed] == f[:, 1, fixed]), entry, check, "a fixed factor changed")
    _require(np.array_equal(x[:, 1], data.images(f[:, 1])), entry, check,
             "pair observations != images(pair factors)")
    p1 = next(pairs.pair_batches(data, batch_size=3, seed=seed, num_batches=1)).numpy()
    p2 = next(pairs.pair_batches(data, batch_size=3, seed=seed, num_batches=1)).numpy()
    _require(np.array_equal(p1, p2) and p1.shape == (3, 2, *data.observation_shape), entry,
             check, "pair_batches(seed) is not reproducible or has the wrong shape")
    return None


# -- methods -----------------------------------------------------------------------------------
def _squares(f: np.ndarray) -> np.ndarray:
    """A 4x4 white square at (2a, 2b) on a 16x16 black image, ``(n, 1, 16, 16)`` float32."""
    img = np.zeros((len(f), 1, 16, 16), np.float32)
    for i, (a, b) in enumerate(f):
        img[i, 0, 2 * a: 2 * a + 4, 2 * b: 2 * b + 4] = 1.0
    return img


def tiny_squares() -> Any:
    """The default data of :func:`check_method`: a square at 6 x 6 positions, ``1x16x16``."""
    import dislab.data as dd

    return dd.from_function([6, 6], _squares, ["x", "y"], name="squares16")


@contextmanager
def _recording(cls: type) -> Any:
    """Collect every instance of ``cls`` built inside the block (the model ``fit`` trains)."""
    made: list[Any] = []
    had = "__init__" in cls.__dict__
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    cls.__init__ = init  # type: ignore[misc]
    try:
        yield made
    finally:
        if had:
            cls.__init__ = original  # type: ignore[misc]
        else:
            del cls.__init__


def check_method(name: str, data: Any = None, out: str | None = None, steps: int = 3,
                 batch_size: int = 8, latent_dim: int = 3, arch: str = "conv",
                 hparams: dict[str, Any] | None = None, seed: int = 0) -> dict[str, str]:
    """Run the method contract on registered method ``name`` (see :mod:`dislab.models.base`).

    ``data``: a small image data set (default :func:`tiny_squares`); ``out``: the folder of
    the tiny training run (default a temporary one, removed afterwards); ``hparams``: values
    for the method's hyper-parameters (default: its declared defaults).

    Checked: the registry entry; every hyper-parameter default passes its own ``check`` and
    an unknown key is refused; ``models.create`` builds it; ``encode`` gives ``(mean,
    logvar)`` of shape ``(B, latent_dim)``; ``decode`` gives ``(B, *obs)`` (or, without a
    decoder, a DislabError); ``loss`` is a finite scalar with detached scalar logs (pair
    methods refuse single images); ``training_step`` changes the parameters and returns the
    loss; ``fit`` for ``steps`` steps writes the run folder and ``load_run`` gives the
    trained model back exactly. Returns ``{check: "passed" | "skipped: why"}``; raises
    :class:`ContractError`.
    """
    import torch

    from dislab import models

    cls = models.get(name)
    entry = f"method {name!r}"
    data = tiny_squares() if data is None else data
    out_dict: dict[str, str] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _method_registry(cls, name, entry)
        out_dict["registry"] = "passed"
        _method_hparams(cls, entry)
        out_dict["hparams"] = "passed"
        model = _method_create(cls, name, entry, data, latent_dim, arch, hparams)
        out_dict["create"] = "passed"
        batch = _method_batch(cls, data, batch_size, seed)
        _method_encode_decode(model, entry, data, batch, latent_dim)
        out_dict["encode_decode"] = "passed"
        _method_loss(model, entry, batch)
        out_dict["loss"] = "passed"
        _method_training_step(model, entry, batch)
        out_dict["training_step"] = "passed"
        with tempfile.TemporaryDirectory(prefix="dislab-check-") as tmp:
            run = Path(out) if out is not None else Path(tmp) / "run"
            _method_fit_round_trip(cls, name, entry, data, run, steps, batch_size, latent_dim,
                                   arch, hparams, seed, batch)
        out_dict["fit_save_load"] = "passed"
    return out_dict


def _method_registry(cls: Any, name: str, entry: str) -> None:
    from dislab import models

    check = "registry"
    _require(isinstance(cls, type) and issubclass(cls, models.Method), entry, check,
             f"registered object {cls!r} is not a dislab.models.Method subclass")
    _require(cls.name == name, entry, check, f"registered under {name!r} but named {cls.name!r}")
    _require(cls.batch_kind in ("single", "pairs"), entry, check,
             f"batch_kind must be 'single' or 'pairs', got {cls.batch_kind!r}")
    _require(cls.batch_counts in ("pairs", "images"), entry, check,
             f"batch_counts must be 'pairs' or 'images', got {cls.batch_counts!r}")
    _require(isinstance(cls.has_decoder, bool), entry, check, "has_decoder must be a bool")
    _require(isinstance(cls.pair_defaults, dict), entry, check, "pair_defaults must be a dict")
    _require(isinstance(cls.hparams, dict)
             and all(isinstance(v, models.HParam) for v in cls.hparams.values()), entry, check,
             "hparams must map names to dislab.models.HParam")
    clash = sorted(set(cls.hparams) & set(cls.shared_options))
    _require(not clash, entry, check, f"hyper-parameters {clash} shadow shared options")


def _method_hparams(cls: Any, entry: str) -> None:
    check = "hparams"
    defaults = {k: hp.default for k, hp in cls.hparams.items()}
    for key, hp in cls.hparams.items():
        _require(isinstance(hp.help, str) and hp.help.strip(), entry, check,
                 f"hyper-parameter {key!r} has no help text")
        try:
            value = hp.check(key, hp.default, cls.name)
        except DislabError as e:
            raise ContractError(f"{entry}: check {check!r} failed: the default of {key!r} "
                                f"fails its own check: {e}") from None
        _require(value == hp.default and type(value) is hp.type, entry, check,
                 f"check() changes the default of {key!r}: {hp.default!r} -> {value!r}")
    _require(cls.resolve_hparams({}) == defaults, entry, check,
             "resolve_hparams({}) is not the declared defaults")
    _require(cls.resolve_hparams(dict(defaults)) == defaults, entry, check,
             "resolve_hparams(defaults) is not the defaults")
    try:
        cls.resolve_hparams({"no_such_hparam": 1})
    except DislabError as e:
        _require("no_such_hparam" in str(e), entry, check,
                 f"the error for an unknown key does not name it: {e}")
    else:
        raise ContractError(f"{entry}: check {check!r} failed: resolve_hparams accepted the "
                            "unknown key 'no_such_hparam'")


def _method_create(cls: Any, name: str, entry: str, data: Any, latent_dim: int, arch: str,
                   hparams: dict[str, Any] | None) -> Any:
    from dislab import models

    check = "create"
    shared = dict(arch=arch, reconstruction="bernoulli", dataset_size=len(data))
    model = models.create(name, data.observation_shape, latent_dim, **shared,
                          **dict(hparams or {}))
    _require(isinstance(model, cls), entry, check, f"models.create built a {type(model)}")
    _require(any(True for _ in model.parameters()), entry, check, "the model has no parameters")
    try:
        models.create(name, data.observation_shape, latent_dim, **shared, no_such_hparam=1)
    except DislabError:
        pass
    else:
        raise ContractError(f"{entry}: check {check!r} failed: models.create accepted the "
                            "unknown option 'no_such_hparam'")
    return model


def _method_batch(cls: Any, data: Any, batch_size: int, seed: int) -> Any:
    if cls.batch_kind == "pairs":
        from dislab.data.pairs import pair_batches

        return next(pair_batches(data, batch_size=batch_size, seed=seed, num_batches=1,
                                 **cls.pair_defaults))
    return next(data.batches(batch_size=batch_size, seed=seed, num_batches=1))


def _method_encode_decode(model: Any, entry: str, data: Any, batch: Any,
                          latent_dim: int) -> None:
    import torch

    check = "encode_decode"
    x = batch.reshape(-1, *data.observation_shape)
    b = x.shape[0]
    model.eval()
    with torch.no_grad():
        enc = model.encode(x)
        _require(isinstance(enc, tuple) and len(enc) == 2, entry, check,
                 "encode must return (mean, logvar)")
        mean, logvar = enc
        for what, t in (("mean", mean), ("logvar", logvar)):
            _require(tuple(t.shape) == (b, latent_dim) and t.dtype.is_floating_point, entry,
                     check, f"encode's {what} is {tuple(t.shape)} {t.dtype}, want "
                     f"{(b, latent_dim)} float")
            _require(bool(torch.isfinite(t).all()), entry, check, f"encode's {what} not finite")
        rep = model.representation(x)
        _require(tuple(rep.shape) == (b, latent_dim), entry, check,
                 f"representation is {tuple(rep.shape)}, want {(b, latent_dim)}")
        _require(torch.equal(rep, model.representation(x)), entry, check,
                 "representation of the same batch differs in eval mode")
        z = torch.zeros(b, latent_dim)
        if model.has_decoder:
            logits = model.decode(z)
            _require(tuple(logits.shape) == (b, *data.observation_shape), entry, check,
                     f"decode gave {tuple(logits.shape)}, want {(b, *data.observation_shape)}")
            img = model.decode_images(z)
            _require(bool(torch.isfinite(img).all()) and img.min() >= 0 and img.max() <= 1,
                     entry, check, "decode_images leaves [0, 1]")
        else:
            try:
                model.decode(z)
            except DislabError:
                pass
            else:
                raise ContractError(f"{entry}: check {check!r} failed: has_decoder is False "
                                    "but decode did not raise a DislabError")
    model.train()


def _method_loss(model: Any, entry: str, batch: Any) -> None:
    import torch

    check = "loss"
    loss, logs = model.loss(batch, 0)
    _require(isinstance(loss, torch.Tensor) and loss.dim() == 0, entry, check,
             f"loss must be a scalar tensor, got {getattr(loss, 'shape', type(loss))}")
    _require(bool(torch.isfinite(loss)) and loss.requires_grad, entry, check,
             f"loss must be finite and differentiable, got {loss}")
    _require(isinstance(logs, dict) and logs, entry, check, "logs must be a non-empty dict")
    for key, value in logs.items():
        _require(isinstance(key, str) and isinstance(value, torch.Tensor)
                 and value.numel() == 1, entry, check,
                 f"log {key!r} must be a scalar tensor, got {value!r}")
        _require(not value.requires_grad, entry, check, f"log {key!r} is not detached")
        _require(bool(torch.isfinite(value).all()), entry, check, f"log {key!r} not finite")
    if model.batch_kind == "pairs":
        single = batch[:, 0]
        try:
            model.loss(single, 0)
        except DislabError:
            pass
        else:
            raise ContractError(f"{entry}: check {check!r} failed: a pair method accepted "
                                f"a batch of single images {tuple(single.shape)}")


def _method_training_step(model: Any, entry: str, batch: Any) -> None:
    import torch

    check = "training_step"
    optimizers = model.configure_optimizers()
    _require(isinstance(optimizers, dict) and optimizers
             and all(isinstance(o, torch.optim.Optimizer) for o in optimizers.values()),
             entry, check, "configure_optimizers must return {name: torch.optim.Optimizer}")
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    logs = model.training_step(batch, 0, optimizers)
    _require(isinstance(logs, dict) and "loss" in logs, entry, check,
             "training_step must return its logs including 'loss'")
    _require(bool(torch.isfinite(torch.as_tensor(logs["loss"]))), entry, check,
             "training_step's loss is not finite")
    after = dict(model.named_parameters())
    _require(all(bool(torch.isfinite(p).all()) for p in after.values()), entry, check,
             "a parameter is not finite after one step")
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    _require(changed, entry, check, "one training_step changed no parameter")


def _method_fit_round_trip(cls: Any, name: str, entry: str, data: Any, run: Path, steps: int,
                           batch_size: int, latent_dim: int, arch: str,
                           hparams: dict[str, Any] | None, seed: int, batch: Any) -> None:
    import json

    import torch

    from dislab.train import TrainConfig, fit, load_run

    check = "fit_save_load"
    config = TrainConfig(model=name, latent_dim=latent_dim, arch=arch,
                         hparams=dict(hparams or {}), steps=steps, batch_size=batch_size,
                         seed=seed, device="cpu", out=str(run), checkpoint_every=steps,
                         log_every=1, image_every=0, compile=False, channels_last=False,
                         accelerate=False, tensorboard=False, loggers=[], threads=None,
                         prefetch=False)
    with _recording(cls) as made:
        fit(config, progress=False, data=data)
    _require(made, entry, check, "fit built no model of this class")
    trained = made[0]
    for part in ("config.json", "status.json", "history.jsonl", "model.safetensors"):
        _require((run / part).is_file(), entry, check, f"the run folder lacks {part}")
    status = json.loads((run / "status.json").read_text())
    _require(status.get("status") == "done" and status.get("step") == steps, entry, check,
             f"status.json says {status.get('status')!r} at step {status.get('step')}")
    rows = [json.loads(r) for r in (run / "history.jsonl").read_text().splitlines()]
    _require([r["step"] for r in rows] == list(range(1, steps + 1)), entry, check,
             "history.jsonl does not log every step")
    _require(all(isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])
                 for r in rows), entry, check, "history.jsonl holds a missing or non-finite loss")
    loaded, cfg = load_run(run)
    _require(isinstance(loaded, cls) and cfg.model == name, entry, check,
             f"load_run gave {type(loaded).__name__} for model {cfg.model!r}")
    _require(not loaded.training, entry, check, "load_run's model is not in eval mode")
    want, got = trained.state_dict(), loaded.state_dict()
    _require(sorted(want) == sorted(got)
             and all(torch.equal(want[k].cpu(), got[k]) for k in want), entry, check,
             "the loaded weights differ from the trained ones")
    x = batch.reshape(-1, *data.observation_shape)
    trained.eval()
    with torch.no_grad():
        _require(torch.equal(trained.representation(x), loaded.representation(x)), entry, check,
                 "the loaded model's representation differs from the trained model's")
