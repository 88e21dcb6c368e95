"""Study specs: parsing, validation errors, the Locatello preset grid, run ids, `plan`."""

from __future__ import annotations

import pytest

from dislab.cli import main
from dislab.errors import DislabError
from dislab.study.plan import expand, format_seconds
from dislab.study.spec import load_spec, parse_spec

SMALL = {
    "name": "small",
    "data": ["dsprites"],
    "methods": {"beta_vae": {"grid": {"beta": [1, 4]}},
                "factor_vae": {"grid": {"gamma": [10, 40]}}},
    "seeds": 2,
    "steps": 100,
}


def test_minimal_spec_defaults() -> None:
    spec = parse_spec({"methods": {"beta_vae": None}}, default_name="x")
    assert spec.name == "x"
    assert [d.name for d in spec.data] == ["dsprites"]
    assert spec.seeds == [0]
    assert (spec.steps, spec.latent_dim, spec.batch_size) == (300_000, 10, 64)
    assert spec.metrics is None and spec.eval_seed == "run"
    assert spec.methods[0].points == ({},)
    assert spec.num_runs == 1


def test_grid_is_cartesian_product_and_fixed_is_shared() -> None:
    spec = parse_spec({"methods": {"dip_vae_i": {
        "grid": {"lambda_od": [1, 2, 5], "lambda_d_factor": [1, 10]},
        "fixed": {}}}, "seeds": [3, 7]})
    points = spec.methods[0].points
    assert len(points) == 6
    assert {(p["lambda_od"], p["lambda_d_factor"]) for p in points} == {
        (a, b) for a in (1, 2, 5) for b in (1, 10)}
    spec = parse_spec({"methods": {"annealed_vae": {
        "grid": [{"c_max": 5}, {"c_max": 10}], "fixed": {"gamma": 1000}}}})
    assert [p["gamma"] for p in spec.methods[0].points] == [1000, 1000]
    assert spec.num_runs == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"methods": {"no_such_vae": {}}}, "Unknown method 'no_such_vae'"),
        ({"methods": {"beta_vae": {"grid": {"beta": []}}}}, "empty list"),
        ({"methods": {"beta_vae": {"grid": "beta=1"}}}, "grid must be a mapping"),
        ({"methods": {"beta_vae": {"grid": {"beta": [1, 1]}}}}, "lists a value twice"),
        ({"methods": {"beta_vae": {"grid": {"gama": [1]}}}}, "unknown hyper-parameter 'gama'"),
        ({"methods": {"beta_vae": {"grid": {"beta": [[1]]}}}}, "values must be numbers"),
        ({"methods": {"beta_vae": {"grdi": {}}}}, "unknown key(s) ['grdi']"),
        ({"methods": {}}, "has no 'methods'"),
        ({"methods": {"beta_vae": {}}, "seeds": 0}, "'seeds'"),
        ({"methods": {"beta_vae": {}}, "seeds": [1, 1]}, "lists a seed twice"),
        ({"methods": {"beta_vae": {}}, "steps": -5}, "'steps' must be a positive integer"),
        ({"methods": {"beta_vae": {}}, "stpes": 5}, "Unknown study spec key(s) ['stpes']"),
        ({"methods": {"beta_vae": {}}, "eval_seed": "x"}, "'eval_seed'"),
        ({"methods": {"beta_vae": {}}, "train": {"seed": 3}}, "which the spec sets itself"),
        ({"methods": {"beta_vae": {}}, "data": [{"nme": "dsprites"}]}, "a data set is a name"),
        ({"methods": {"beta_vae": {}}, "data": ["dsprites", "dsprites"]}, "appear twice"),
        ("just text", "must be a YAML mapping"),
    ],
)
def test_bad_specs_raise_clear_errors(raw: object, message: str) -> None:
    with pytest.raises(DislabError) as e:
        parse_spec(raw)
    assert message in str(e.value)


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(DislabError, match="beta_vae") as e:
        parse_spec({"methods": {"betavae": {}}})
    assert "dislab models" in str(e.value)


def test_scientific_steps_are_accepted() -> None:
    assert parse_spec({"methods": {"beta_vae": {}}, "steps": "3e5"}).steps == 300_000


def test_locatello_preset_is_the_study_grid() -> None:
    spec = load_spec("locatello2019")
    assert spec.num_runs == 12_600  # 7 data sets x 36 configs x 50 seeds (dlib sweep.py)
    assert spec.scaled(data=["dsprites"]).num_runs == 1_800
    assert len(spec.data) == 7 and spec.seeds == list(range(50))
    assert (spec.steps, spec.latent_dim, spec.batch_size) == (300_000, 10, 64)
    grid = {m.name: m.points for m in spec.methods}
    assert [p["beta"] for p in grid["beta_vae"]] == [1, 2, 4, 6, 8, 16]
    assert [p["c_max"] for p in grid["annealed_vae"]] == [5, 10, 25, 50, 75, 100]
    assert all(p["gamma"] == 1000 and p["iteration_threshold"] == 100_000
               for p in grid["annealed_vae"])
    assert [p["gamma"] for p in grid["factor_vae"]] == [10, 20, 30, 40, 50, 100]
    assert [p["lambda_od"] for p in grid["dip_vae_i"]] == [1, 2, 5, 10, 20, 50]
    assert {p["lambda_d_factor"] for p in grid["dip_vae_i"]} == {10}
    assert [p["lambda_od"] for p in grid["dip_vae_ii"]] == [1, 2, 5, 10, 20, 50]
    assert {p["lambda_d_factor"] for p in grid["dip_vae_ii"]} == {1}
    assert [p["beta"] for p in grid["beta_tcvae"]] == [1, 2, 4, 6, 8, 10]
    assert len(expand(spec.scaled(data=["dsprites"]))) == 1_800


def test_scaling_down_a_preset() -> None:
    spec = load_spec("locatello2019").scaled(steps=500, seeds=2, data=["dsprites", "shapes3d"])
    assert spec.num_runs == 2 * 36 * 2
    runs = expand(spec)
    assert {r["train"]["steps"] for r in runs} == {500}
    assert {r["seed"] for r in runs} == {0, 1}
    assert {r["data"] for r in runs} == {"dsprites", "shapes3d"}
    with pytest.raises(DislabError, match="--steps"):
        load_spec("locatello2019").scaled(steps=0)


def test_run_ids_are_stable_unique_and_config_dependent() -> None:
    spec = parse_spec(SMALL)
    a, b = expand(spec), expand(parse_spec(SMALL))
    assert [r["run_id"] for r in a] == [r["run_id"] for r in b]
    assert len({r["run_id"] for r in a}) == len(a) == 8
    assert a[0]["run_id"].startswith("dsprites-beta_vae-beta=1-s0-")
    other = expand(spec.scaled(steps=101))
    assert not {r["run_id"] for r in a} & {r["run_id"] for r in other}
    run = a[3]
    assert run["train"]["model"] == run["method"] == "beta_vae"
    assert run["train"]["hparams"] == run["hparams"] == {"beta": 4}
    assert run["train"]["seed"] == run["seed"] == run["eval_seed"] == 1
    fixed = expand(parse_spec({**SMALL, "eval_seed": 7}))
    assert {r["eval_seed"] for r in fixed} == {7}


def test_plan_command_prints_count_and_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "plan", "locatello2019", "--seeds", "50", "--data", "dsprites",
                 "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "1800 runs" in out
    assert "estimated time on this machine" in out and "documented constant" in out


def test_spec_file_errors(tmp_path) -> None:
    with pytest.raises(DislabError, match="no preset of that name"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [beta_vae\n")
    with pytest.raises(DislabError, match="not valid YAML"):
        load_spec(bad)


def test_format_seconds() -> None:
    assert format_seconds(59) == "59s"
    assert format_seconds(3 * 3600 + 120) == "3h 2m"
    assert format_seconds(2 * 86400 + 3600) == "2d 1h 0m"
