"""Your own encoder / decoder (issue 18, item 4): ``arch="module:Encoder,module:Decoder"`` or
``register_arch``, saved in config.json and rebuilt by ``load_run``; imports only when trusted."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import custom_nets
from dislab.errors import DislabError
from dislab.metrics import evaluate_run
from dislab.nets import build, custom, register_arch
from dislab.train import fit, load_run
from train_helpers import cfg

SPEC = "custom_nets:TinyEncoder,custom_nets:TinyDecoder"


def test_spec_trains_saves_and_rebuilds(tmp_path) -> None:
    run = fit(cfg(tmp_path, arch=SPEC, latent_dim=3, steps=6), progress=False)
    assert json.loads((run / "config.json").read_text())["arch"] == SPEC
    model, config = load_run(run)
    assert config.arch == SPEC
    assert isinstance(model.encoder, custom.SplitEncoder)
    assert isinstance(model.encoder.inner, custom_nets.TinyEncoder)
    assert isinstance(model.decoder, custom_nets.TinyDecoder)
    x = torch.rand(5, 1, 16, 16)
    mean, logvar = model.encode(x)
    h = model.encoder.inner(x)
    assert torch.equal(mean, h[:, :3]) and torch.equal(logvar, h[:, 3:])
    assert model.decode(mean).shape == (5, 1, 16, 16)
    # the rebuilt model holds the trained weights: a second load encodes identically
    again, _ = load_run(run)
    assert torch.equal(again.encode(x)[0], mean)
    record = evaluate_run(run, metrics="mig", progress=False, params={"mig": {"num_train": 200}})
    assert 0.0 <= record["metrics"]["mig"]["values"]["discrete_mig"] <= 1.0


def test_registered_name_and_mixed_spec(tmp_path) -> None:
    register_arch("test_tiny_tuple", custom_nets.TupleEncoder, custom_nets.TinyDecoder)
    run = fit(cfg(tmp_path, arch="test_tiny_tuple", latent_dim=2, steps=4), progress=False)
    model, _ = load_run(run)
    assert isinstance(model.encoder, custom_nets.TupleEncoder)  # (mean, logvar): no wrapper
    enc, dec = build("custom_nets:TinyEncoder,conv", (1, 16, 16), 4)
    assert type(dec).__name__ == "DeconvDecoder"
    assert dec(enc(torch.rand(2, 1, 16, 16))[0]).shape == (2, 1, 16, 16)


def test_user_code_is_imported_only_when_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "custom_nets")
    monkeypatch.setattr(custom, "_TRUSTED", set())
    monkeypatch.delenv(custom.TRUST_ENV, raising=False)
    with pytest.raises(DislabError, match="importing it runs that code"):
        build(SPEC, (1, 16, 16), 3)
    assert "custom_nets" not in sys.modules  # refused before importing
    monkeypatch.setenv(custom.TRUST_ENV, "other, custom_nets")
    enc, _ = build(SPEC, (1, 16, 16), 3)
    assert "custom_nets" in sys.modules
    monkeypatch.delenv(custom.TRUST_ENV)
    monkeypatch.delitem(sys.modules, "custom_nets")
    custom.trust_modules("custom_nets")
    build(SPEC, (1, 16, 16), 3)


def test_contract_errors() -> None:
    with pytest.raises(DislabError, match=r"decoder returned \(2, 256\), expected logits"):
        build("custom_nets:TinyEncoder,custom_nets:WrongDecoder", (1, 16, 16), 3)
    with pytest.raises(DislabError, match="must be a torch.nn.Module subclass"):
        build("custom_nets:not_a_module,conv", (1, 16, 16), 3)
    with pytest.raises(DislabError, match="has no 'Missing'"):
        build("custom_nets:Missing,conv", (1, 16, 16), 3)
    with pytest.raises(DislabError, match=r"encoder returned \(2, 1\) for a batch of 2"):
        build("custom_nets:WrongEncoder,conv", (1, 16, 16), 3)
    with pytest.raises(DislabError, match=r"encoder fails on a batch of shape \(2, 1, 16, 16\)"):
        build("custom_nets:TinyDecoder,conv", (1, 16, 16), 3)
    with pytest.raises(DislabError, match="Unknown architecture"):
        build("resnet", (1, 16, 16), 3)
    with pytest.raises(DislabError, match="plain word"):
        register_arch("a:b", custom_nets.TinyEncoder, custom_nets.TinyDecoder)
    custom.trust_modules("no_such_pkg_xyz")
    with pytest.raises(DislabError, match="cannot import module"):
        build("no_such_pkg_xyz.nets:E,conv", (1, 16, 16), 3)
