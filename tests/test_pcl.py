"""PCL: the regression function by hand, the logistic loss, the deterministic code."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dislab.errors import DislabError
from dislab.models import create
from dislab.models.pcl import DETERMINISTIC_LOGVAR, derangement, pcl_regression


def test_regression_function_by_hand():
    h1 = torch.tensor([[1.0, -2.0]])
    h2 = torch.tensor([[0.5, 3.0]])
    w1 = torch.tensor([2.0, 1.0])
    w2 = torch.tensor([-1.0, 0.5])
    b = torch.tensor([0.25, -1.0])
    # |2*1 - 1*0.5 + 0.25| = 1.75 ; |1*(-2) + 0.5*3 - 1| = 1.5 ; sum = 3.25
    # a * (1 + 4) = 0.5 * 5 = 2.5 ; m = -0.75  ->  -3.25 + 2.5 - 0.75 = -1.5
    r = pcl_regression(h1, h2, w1, w2, b, 0.5, -0.75)
    assert r.shape == (1,)
    assert r.item() == pytest.approx(-1.5)


def test_model_regression_uses_its_parameters():
    model = create("pcl", (1, 64, 64), latent_dim=2)
    with torch.no_grad():
        model.w1.copy_(torch.tensor([2.0, 1.0]))
        model.w2.copy_(torch.tensor([-1.0, 0.5]))
        model.b.copy_(torch.tensor([0.25, -1.0]))
        model.m.fill_(-0.75)
    h1 = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    h2 = torch.tensor([[0.5, 3.0], [0.0, 0.0]])
    r = model.regression(h1, h2)
    # a = 1 (fixed): -3.25 + 5 - 0.75 = 1.0 ; second row: -(0.25 + 1) - 0.75 = -2.0
    assert r.tolist() == pytest.approx([1.0, -2.0])


def test_derangement_has_no_fixed_point():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 10, 64):
        for _ in range(20):
            p = derangement(n, generator=g)
            assert sorted(p.tolist()) == list(range(n))
            assert not torch.any(p == torch.arange(n))


def test_loss_is_logistic_regression_on_true_vs_shuffled_pairs():
    torch.manual_seed(0)
    model = create("pcl", (1, 64, 64), latent_dim=3)
    assert model.batch_kind == "pairs" and not model.has_decoder
    batch = torch.rand(5, 2, 1, 64, 64)
    torch.manual_seed(7)
    loss, logs = model.loss(batch, 0)
    with torch.no_grad():
        h = model.features(batch.reshape(10, 1, 64, 64)).reshape(5, 2, -1)
    torch.manual_seed(7)
    perm = derangement(5)
    pos = model.regression(h[:, 1], h[:, 0])
    neg = model.regression(h[:, 1], h[:, 0][perm])
    want = 0.5 * (F.softplus(-pos).mean() + F.softplus(neg).mean())
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert 0.0 <= logs["accuracy"].item() <= 1.0
    loss.backward()
    assert model.w1.grad is not None and model.encoder.mean.weight.grad is not None


def test_encode_is_deterministic_code_and_decode_raises():
    model = create("pcl", (1, 64, 64), latent_dim=4).eval()
    x = torch.rand(3, 1, 64, 64)
    mean, logvar = model.encode(x)
    assert mean.shape == (3, 4)
    assert torch.all(logvar == DETERMINISTIC_LOGVAR)
    assert math.exp(0.5 * DETERMINISTIC_LOGVAR) < 1e-4
    torch.testing.assert_close(model.representation(x), mean)
    with pytest.raises(DislabError, match="no decoder"):
        model.decode(mean)


def test_learn_a_option_and_bad_batch():
    fixed = create("pcl", (1, 64, 64), latent_dim=2)
    learned = create("pcl", (1, 64, 64), latent_dim=2, learn_a=True)
    assert "a" not in dict(fixed.named_parameters())
    assert "a" in dict(learned.named_parameters())
    with pytest.raises(DislabError, match="pairs"):
        fixed.loss(torch.rand(1, 2, 1, 64, 64), 0)
    with pytest.raises(DislabError, match="Unknown hyper-parameter"):
        create("pcl", (1, 64, 64), latent_dim=2, beta=3.0)
