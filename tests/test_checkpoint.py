"""Checkpoint files: exact round trips, atomic writes, clear errors, never an unpickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from dislab import models
from dislab.errors import DislabError
from dislab.train import checkpoint as ckpt
from dislab.train import fit, load_run
from train_helpers import cfg


def _trained_adam() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = models.create("beta_vae", (1, 16, 16), 3)
    opt = m.configure_optimizers()["model"]
    x = torch.rand(8, 1, 16, 16)
    for step in range(3):
        m.training_step(x, step, {"model": opt})
    return m, opt


def test_tensors_and_meta_round_trip(tmp_path: Path) -> None:
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor(3.0),
         "c": torch.arange(4, dtype=torch.int64)}
    meta = {"step": 7, "nested": {"x": [1, 2.5, None]}}
    ckpt.save_tensors(tmp_path / "f.safetensors", t, meta)
    t2, meta2 = ckpt.load_tensors(tmp_path / "f.safetensors")
    assert meta2 == meta
    for k in t:
        assert torch.equal(t[k], t2[k]) and t[k].dtype == t2[k].dtype
    assert [p.name for p in tmp_path.iterdir()] == ["f.safetensors"]  # no temp file left


def test_optimizer_state_round_trip_continues_identically(tmp_path: Path) -> None:
    m, opt = _trained_adam()
    t, meta = ckpt.optimizer_to_tensors("model", opt)
    t.update({f"model/{k}": v for k, v in m.state_dict().items()})
    ckpt.save_tensors(tmp_path / "s.safetensors", t, {"opt": meta})
    t2, meta2 = ckpt.load_tensors(tmp_path / "s.safetensors")
    m2 = models.create("beta_vae", (1, 16, 16), 3)
    m2.load_state_dict({k[6:]: v for k, v in t2.items() if k.startswith("model/")})
    opt2 = m2.configure_optimizers()["model"]
    ckpt.optimizer_from_tensors("model", opt2, t2, meta2["opt"])
    x = torch.rand(8, 1, 16, 16)
    torch.manual_seed(1)
    m.training_step(x, 3, {"model": opt})
    torch.manual_seed(1)
    m2.training_step(x, 3, {"model": opt2})
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(DislabError, match="corrupt or not a safetensors"):
        ckpt.load_tensors(p)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "t.safetensors"
    ckpt.save_tensors(p, {"a": torch.zeros(1000)}, {"step": 1})
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DislabError, match="corrupt"):
        ckpt.load_tensors(p)


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (exec, ("raise SystemExit('unpickled!')",))

    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(DislabError):
        ckpt.load_tensors(p)
    torch.save({"w": torch.zeros(3)}, tmp_path / "torch.pt")
    with pytest.raises(DislabError):
        ckpt.load_tensors(tmp_path / "torch.pt")


def test_foreign_safetensors_is_a_clear_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(p))
    with pytest.raises(DislabError, match="not one written by dislab"):
        ckpt.load_tensors(p)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DislabError, match="does not exist"):
        ckpt.load_tensors(tmp_path / "nope.safetensors")


def test_resume_from_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=4), progress=False)
    (run / "checkpoint/checkpoint.safetensors").write_bytes(b"garbage" * 50)
    with pytest.raises(DislabError, match="corrupt"):
        fit(cfg(tmp_path, steps=8), progress=False, resume=True)


def test_load_run_rejects_wrong_weights(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=2), progress=False)
    good = (run / "model.safetensors").read_bytes()
    # weights of another architecture (latent size 3 instead of 10)
    other = models.create("beta_vae", (1, 16, 16), 3)
    ckpt.save_weights(run / "model.safetensors", other,
                      {"observation_shape": [1, 16, 16], "dataset_size": 36})
    with pytest.raises(DislabError, match="do not fit this model"):
        load_run(run)
    (run / "model.safetensors").write_bytes(good[:50])
    with pytest.raises(DislabError, match="corrupt"):
        load_run(run)
    (run / "model.safetensors").unlink()
    with pytest.raises(DislabError, match="no final weights"):
        load_run(run)
    with pytest.raises(DislabError, match="not a dislab run"):
        load_run(tmp_path)


def test_weights_header_describes_model(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=2), progress=False)
    _, meta = ckpt.load_tensors(run / "model.safetensors")
    assert meta["observation_shape"] == [1, 16, 16] and meta["dataset_size"] == 36
    assert meta["model"] == "beta_vae" and meta["hparams"] == {"beta": 4.0}
    assert json.loads((run / "config.json").read_text())["model"] == "beta_vae"
