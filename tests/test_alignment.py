"""The local-principal-direction alignment measurement (dislab.data.alignment)."""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data import DataError, from_function
from dislab.data.alignment import (
    alignment,
    factor_jacobian,
    main,
    mixing_angles,
    resolve_factors,
    scores_from_gram,
)
from dislab.data.perturbed import perturb


def test_scores_of_known_gram_matrices():
    diag = np.diag([3.0, 1.0, 2.0])[None]
    s = scores_from_gram(diag)
    assert s["axis_alignment"][0] == pytest.approx(1.0)
    assert s["top_alignment"][0] == pytest.approx(1.0)
    assert s["offdiag"][0] == pytest.approx(0.0)
    mixed = np.array([[[2.0, 1.0], [1.0, 2.0]]])  # eigenvectors (1, ±1)/√2
    s = scores_from_gram(mixed)
    assert s["axis_alignment"][0] == pytest.approx(0.5)
    assert s["top_alignment"][0] == pytest.approx(0.5)
    assert s["offdiag"][0] == pytest.approx(0.5)
    assert mixing_angles(mixed)[0, 0, 1] == pytest.approx(45.0)
    # rotation by 30 degrees of a diagonal matrix: principal directions 30 degrees off-axis
    t = np.radians(30.0)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    g = r @ np.diag([4.0, 1.0]) @ r.T
    assert mixing_angles(g[None])[0, 0, 1] == pytest.approx(30.0)
    assert scores_from_gram(g[None])["top_alignment"][0] == pytest.approx(np.cos(t) ** 2)


def _linear(a: np.ndarray):
    """x(w) = A w: finite differences recover A exactly, inside and at the edges."""
    return from_function((5, 7, 4), lambda f: f.astype(np.float64) @ a.T, ["a", "b", "c"])


def test_jacobian_of_a_linear_map_is_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 3))
    data = _linear(a)
    pts = np.array([[0, 0, 0], [4, 6, 3], [2, 3, 1]])
    j = factor_jacobian(data, pts, [0, 1, 2])
    assert j.shape == (3, 6, 3)
    for i in range(3):
        np.testing.assert_allclose(j[i], a, rtol=1e-5, atol=1e-5)


def test_orthogonal_columns_align_and_rotated_columns_do_not():
    ortho = np.zeros((6, 3))
    ortho[0, 0], ortho[1, 1], ortho[2, 2] = 3.0, 2.0, 1.0
    res = alignment(_linear(ortho), num_points=16, seed=0)
    assert res["axis_alignment"] == pytest.approx(1.0)
    assert res["offdiag"] == pytest.approx(0.0, abs=1e-9)
    rot = ortho.copy()
    rot[:, :2] = ortho[:, :2] @ np.array([[1.0, 1.0], [1.0, -1.0]])  # mix factors a and b
    res = alignment(_linear(rot), num_points=16, seed=0)
    assert res["top_alignment"] < 0.75
    assert res["mixing_angle"][0][1] > 20


def _blocks():
    def observe(f):
        img = np.zeros((f.shape[0], 1, 32, 32), np.float32)
        for i, (_s, x, y) in enumerate(f):
            img[i, 0, 4 + y:7 + y, 4 + x:8 + x] = 1.0  # 4 wide, 3 tall
        return img

    return from_function((2, 16, 16), observe, ["shape", "x", "y"], name="blocks")


def test_perturbed_data_is_misaligned_where_the_original_is_aligned():
    base = _blocks()
    orig = alignment(base, num_points=48, seed=0)
    pert = alignment(perturb(base, epsilon=0.1), num_points=48, seed=0)
    noise = alignment(perturb(base, kind="noise", epsilon=0.1), num_points=48, seed=0)
    assert orig["factors"] == ["x", "y"]  # categorical shape left out
    assert orig["global_axis_alignment"] > 0.95
    assert pert["global_axis_alignment"] < orig["global_axis_alignment"] - 0.2
    assert pert["offdiag"] > orig["offdiag"] + 0.2
    assert noise["global_axis_alignment"] > pert["global_axis_alignment"]


def test_factor_selection_and_cli(tmp_path, capsys):
    data = _blocks()
    assert resolve_factors(data, "all") == [0, 1, 2]
    assert resolve_factors(data, ["y", 1]) == [2, 1]
    with pytest.raises(DataError, match="unknown factor"):
        resolve_factors(data, ["z"])
    with pytest.raises(DataError, match="at least two"):
        resolve_factors(data, ["x"])
    out = tmp_path / "a.json"
    assert main(["dsprites", "--points", "4", "--out", str(out)]) == 0
    assert out.exists() and "axis_alignment" in capsys.readouterr().out
