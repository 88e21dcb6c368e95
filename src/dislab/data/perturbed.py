"""Perturbed data sets (Zietlow et al. 2021): same factors, the variance structure broken.

Every image of a full-grid base data set is changed slightly and deterministically,

    x'(w) = clip(x(w) + ε · m(w), 0, 1),       m(w) ∈ [-1, 1] per pixel,

so the factors ``w`` still determine the image exactly and ``|x' - x| <= ε`` per pixel.
Defaults ε = 0.1 for dSprites and 0.175 for Shapes3D (values reported for Zietlow et
al. 2021 by a third-party reproduction, unverified against the paper's text; the paper's
``m`` is not public).

Two kinds of ``m`` (any callable ``m(factors (n, K) int64) -> (n, *obs)`` in [-1, 1] can be
plugged in with ``pattern=``):

``kind="structured"`` — :class:`GratingPattern`, dislab's own construction
    ``m`` is a grating whose *phase* is driven by the sum of factor steps::

        m(w)[p] = wave(2π (p_row + p_col + ½) / wavelength + 2π/period · Σ_{k in g} c_k w_k)

    with ``wave`` a square wave (sign of the sine; ``waveform="sine"`` for the sine itself),
    ``period = 4`` factor steps per phase cycle (a quarter turn per step) and ``c_k = 1`` over
    the group ``g`` of factors. By default (``groups="all"``) the group holds every factor with
    more than one value except categorical ones (shape), so on dSprites the phase moves with
    scale + orientation + posX + posY. One step of any factor shifts the grating by a quarter
    period and changes every pixel; a step along ``+e_a + e_b`` shifts it by half a period
    (the largest change), a step along ``e_a - e_b`` not at all. Directions that mix factors
    thus carry more image variance than any factor alone, and the local principal directions
    of the data stop being the factor axes (:mod:`dislab.data.alignment` measures this).
    ``groups="pairs"`` (consecutive pairs, each grating on its own tiles of side ``tile``) or
    explicit lists (``[["posX", "posY"], ["scale", "-orientation"]]``; ``-`` = difference)
    give other mixings.

``kind="noise"`` — :class:`NoisePattern`, the paper's pixel-noise baseline
    ``m`` uniform in [-1, 1] per pixel, a fixed function of the flat grid index (SplitMix64
    hash, :func:`dislab.data.dsprites.keyed_uniform`), so the perturbation ``ε m`` is uniform
    in [-ε, ε], the same for every draw of the same factors, and carries no factor structure.

Registered names: ``dsprites_perturbed``, ``dsprites_noise``, ``shapes3d_perturbed``,
``shapes3d_noise`` and the generic ``perturbed`` (``base="mpi3d_toy"``, ``kind=...``); options
``epsilon``, the pattern's options (``groups``, ``period``, ``wavelength``, ``tile``,
``waveform``; ``seed`` for noise) and ``base_options`` (a dict for the base loader).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, load, register
from dislab.data.pairs import AUTO_FIXED

__all__ = [
    "DEFAULT_EPSILON",
    "GratingPattern",
    "NoisePattern",
    "PerturbedData",
    "perturb",
    "default_epsilon",
]

#: ε per base data set (Zietlow et al. 2021 as reported by a third-party reproduction).
DEFAULT_EPSILON: dict[str, float] = {"dsprites": 0.1, "shapes3d": 0.175}
KINDS = ("structured", "noise")
Pattern = Callable[[np.ndarray], np.ndarray]


def default_epsilon(data: GroundTruthData) -> float:
    """0.1 for dSprites-like, 0.175 for Shapes3D-like data sets, else 0.1."""
    name = data.name.lower()
    for key, eps in DEFAULT_EPSILON.items():
        if name.startswith(key):
            return eps
    return 0.1


def _factor_index(data: GroundTruthData, f: str | int) -> tuple[int, int]:
    """``(index, sign)`` of a group entry: a name, ``"-name"`` or an index."""
    sign = 1
    if isinstance(f, str) and f.startswith("-") and f[1:] in data.factor_names:
        sign, f = -1, f[1:]
    try:
        return data.factor_index(f, "factor in groups"), sign
    except DataError as e:
        raise DataError(f"perturbed: {e} Prefix a name with '-' for a difference.") from None


class GratingPattern:
    """dislab's structured ``m(w)`` (module doc): per factor group, a grating on its own tiles
    whose phase moves with the sum of the group's factor steps.

    ``groups``: ``"all"`` (default: one group of all non-categorical factors with more than
    one value), ``"pairs"`` (consecutive pairs of those, an odd one out joining the last pair)
    or a list of lists of names / ``"-name"`` / indices. ``period``: factor steps per full phase
    cycle (4: a quarter turn per step). ``wavelength``: pixels per spatial cycle along the
    diagonal. ``tile``: side of the square pixel tiles dealt to the groups. ``waveform``:
    ``"square"`` (default, sign of the sine: the most image change per step within ε) or
    ``"sine"``. Defaults chosen by the alignment measurement (docs/inductive_biases.md).
    """

    def __init__(
        self,
        data: GroundTruthData,
        groups: str | Sequence[Sequence[str | int]] = "all",
        period: float = 4.0,
        wavelength: float = 8.0,
        tile: int = 4,
        waveform: str = "square",
    ) -> None:
        if not data.is_image:
            raise DataError("perturbed: the grating pattern needs image observations (C, H, W).")
        if period <= 0 or wavelength <= 0 or int(tile) < 1:
            raise DataError("perturbed: period, wavelength and tile must be positive.")
        if waveform not in ("sine", "square"):
            raise DataError(f"perturbed: waveform must be 'sine' or 'square', got {waveform!r}.")
        self.observation_shape = tuple(data.observation_shape)
        self.period, self.wavelength, self.tile = float(period), float(wavelength), int(tile)
        self.waveform = waveform
        self.groups = self._resolve_groups(data, groups)
        k = data.num_factors
        self.coef = np.zeros((len(self.groups), k))  # (G, K): phase steps per factor step
        for g, members in enumerate(self.groups):
            for idx, sign in members:
                self.coef[g, idx] += sign
        _, h, w = self.observation_shape
        rows, cols = np.mgrid[0:h, 0:w]
        self.owner = ((rows // self.tile) + (cols // self.tile)) % len(self.groups)  # (H, W)
        # Half-pixel offset: with the default wavelength and period the argument never hits a
        # multiple of π, so the square wave has no ties at its jumps.
        self.spatial = 2.0 * np.pi * (rows + cols + 0.5) / self.wavelength  # (H, W)
        self.group_names = [[("-" if s < 0 else "") + data.factor_names[i] for i, s in grp]
                            for grp in self.groups]

    @staticmethod
    def _resolve_groups(data: GroundTruthData, groups: Any) -> list[list[tuple[int, int]]]:
        active = [i for i, n in enumerate(data.factor_sizes)
                  if n > 1 and data.factor_names[i].lower() not in AUTO_FIXED]
        if isinstance(groups, str):
            if groups == "all":
                out = [[(i, 1) for i in active]]
            elif groups == "pairs":
                out = [[(i, 1) for i in active[j:j + 2]] for j in range(0, len(active), 2)]
                if len(out) > 1 and len(out[-1]) == 1:
                    out[-2].extend(out.pop())
            else:
                raise DataError(f"perturbed: groups must be 'pairs', 'all' or a list of factor "
                                f"lists, got {groups!r}.")
        else:
            out = [[_factor_index(data, f) for f in grp] for grp in groups]
        out = [grp for grp in out if grp]
        if not out:
            raise DataError("perturbed: no factor to build the pattern from; pass groups=.")
        return out

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        """``(n, K) int64 -> (n, C, H, W) float32`` in [-1, 1]."""
        steps = np.mod(np.asarray(factors, np.float64) @ self.coef.T, self.period)  # exact ints
        phase = 2.0 * np.pi / self.period * steps
        arg = self.spatial[None] + np.take_along_axis(
            phase[:, :, None, None],
            np.broadcast_to(self.owner[None, None], (phase.shape[0], 1, *self.owner.shape)),
            axis=1)[:, 0]
        m = np.sin(arg)
        if self.waveform == "square":
            m = np.where(m >= 0, 1.0, -1.0)
        c = self.observation_shape[0]
        return np.repeat(m[:, None].astype(np.float32), c, axis=1)

    def describe(self) -> dict[str, Any]:
        return {"pattern": "grating", "groups": self.group_names, "period": self.period,
                "wavelength": self.wavelength, "tile": self.tile, "waveform": self.waveform}


class NoisePattern:
    """Pixel noise: ``m`` uniform in [-1, 1] per pixel, a fixed function of the flat grid
    index (and ``seed``)."""

    def __init__(self, data: GroundTruthData, seed: int = 0) -> None:
        self.data = data
        self.seed = int(seed)
        self.size = int(np.prod(data.observation_shape))

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        from dislab.data.dsprites import keyed_uniform

        idx = self.data.index(factors)
        u = keyed_uniform(self.seed, 0x5EED, idx, self.size)
        return (2.0 * u - 1.0).astype(np.float32).reshape(len(idx), *self.data.observation_shape)

    def describe(self) -> dict[str, Any]:
        return {"pattern": "uniform noise", "seed": self.seed}


class PerturbedData(GroundTruthData):
    """``x' = clip(x + ε m(w), 0, 1)`` over a full-grid base data set (module doc)."""

    source = "perturbed"

    def __init__(self, base: GroundTruthData, pattern: Pattern, epsilon: float,
                 name: str | None = None, kind: str = "custom") -> None:
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon)
                and 0.0 <= epsilon <= 1.0):
            raise DataError(f"perturbed: epsilon must be a number in [0, 1], got {epsilon!r}.")
        self.base = base
        self.pattern = pattern
        self.epsilon = float(epsilon)
        self.kind = kind
        self.name = name or f"{base.name}_{'noise' if kind == 'noise' else 'perturbed'}"
        self.factor_names = tuple(base.factor_names)
        self.factor_sizes = tuple(base.factor_sizes)
        self.observation_shape = tuple(base.observation_shape)
        self._sampler = getattr(base, "_sampler", None)

    def perturbation(self, factors: np.ndarray) -> np.ndarray:
        """``ε m(w)``, ``(n, *obs)`` float32 (before clipping)."""
        m = np.asarray(self.pattern(self.check_factors(factors)), dtype=np.float32)
        if m.shape[1:] != self.observation_shape:
            raise DataError(f"perturbed: pattern returned shape {m.shape[1:]}, expected "
                            f"{self.observation_shape} per image.")
        return self.epsilon * np.clip(m, -1.0, 1.0)

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        x = self.base.images_from_index(index)
        x += self.perturbation(self.factors(index))
        return np.clip(x, 0.0, 1.0, out=x)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"base": self.base.name, "kind": self.kind, "epsilon": self.epsilon})
        if hasattr(self.pattern, "describe"):
            out.update(self.pattern.describe())
        return out


def perturb(
    data: GroundTruthData,
    kind: str = "structured",
    epsilon: float | None = None,
    pattern: Pattern | None = None,
    **pattern_options: Any,
) -> PerturbedData:
    """The perturbed (``kind="structured"``) or pixel-noise (``"noise"``) version of ``data``.

    ``epsilon``: default :func:`default_epsilon`. ``pattern``: a custom ``m`` (then ``kind``
    only names the result); otherwise :class:`GratingPattern` / :class:`NoisePattern` built
    with ``pattern_options``.
    """
    if kind not in KINDS:
        raise DataError(f"perturbed: kind must be one of {KINDS}, got {kind!r}.")
    if pattern is None:
        try:
            pattern = (NoisePattern(data, **pattern_options) if kind == "noise"
                       else GratingPattern(data, **pattern_options))
        except TypeError as e:
            raise DataError(f"perturbed: bad option for kind={kind!r}: {e}") from e
    elif pattern_options:
        raise DataError("perturbed: pattern options are only for the built-in patterns; "
                        f"got {sorted(pattern_options)} with a custom pattern.")
    eps = default_epsilon(data) if epsilon is None else epsilon
    return PerturbedData(data, pattern, eps, kind=kind)


def _factory(base_name: str, kind: str) -> Callable[..., PerturbedData]:
    def make(path: str | None = None, epsilon: float | None = None,
             base_options: Mapping[str, Any] | None = None, **options: Any) -> PerturbedData:
        base = load(base_name, path=path, **dict(base_options or {}))
        return perturb(base, kind=kind, epsilon=epsilon, **options)

    return make


for _base, _eps in DEFAULT_EPSILON.items():
    register(f"{_base}_perturbed",
             f"{_base} with a factor-mixing grating of strength eps={_eps} (Zietlow et al. 2021)"
             )(_factory(_base, "structured"))
    register(f"{_base}_noise",
             f"{_base} plus fixed uniform pixel noise in [-{_eps}, {_eps}] (Zietlow baseline)"
             )(_factory(_base, "noise"))


@register("perturbed", "any full-grid data set (base=NAME) perturbed: kind=structured|noise")
def load_perturbed(path: str | None = None, base: str = "dsprites", kind: str = "structured",
                   epsilon: float | None = None, base_options: Mapping[str, Any] | None = None,
                   **options: Any) -> PerturbedData:
    """Generic loader: ``load("perturbed", base="shapes3d", kind="noise", epsilon=0.2)``."""
    data = load(base, path=path, **dict(base_options or {}))
    return perturb(data, kind=kind, epsilon=epsilon, **options)
