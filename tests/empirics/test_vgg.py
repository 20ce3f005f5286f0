"""The VGG-11 family: layer widths, parameter counts, output shapes, dropout, losses."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrdecay.empirics import vgg as V


def conv_widths(m):
    return [l.out_channels for l in m.modules() if isinstance(l, nn.Conv2d)]


def linear_shapes(m):
    return [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, nn.Linear)]


def expected_params(widths, hidden, bn):
    """Parameter count written out by hand: 3×3 convs (+bias or BN scale/shift), then the MLP."""
    n, c = 0, 3
    for w in widths:
        n += 9 * c * w + (2 * w if bn else w)
        c = w
    for h in list(hidden) + [10]:
        n += c * h + h
        c = h
    return n


def test_vgg11_configuration_a():
    m = V.vgg11()
    assert conv_widths(m) == [64, 128, 256, 256, 512, 512, 512, 512]  # Simonyan & Zisserman, config A
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.modules()) == 5
    assert linear_shapes(m) == [(512, 512), (512, 512), (512, 10)]
    assert V.num_parameters(m) == expected_params([64, 128, 256, 256, 512, 512, 512, 512], [512, 512], False)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_width_multiplier_and_batch_norm():
    m = V.vgg11(width=0.25, batch_norm=True)
    assert conv_widths(m) == [16, 32, 64, 64, 128, 128, 128, 128]
    assert sum(isinstance(l, nn.BatchNorm2d) for l in m.modules()) == 8
    assert V.num_parameters(m) == expected_params([16, 32, 64, 64, 128, 128, 128, 128], [128, 128], True)
    assert m(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_slim_variant_is_the_authors():
    m = V.slim_vgg11()
    assert conv_widths(m) == [32, 64, 64, 64, 128, 128, 256, 256]
    assert linear_shapes(m) == [(256, 128), (128, 128), (128, 10)]
    assert not any(isinstance(l, nn.BatchNorm2d) for l in m.modules())
    assert [l.p for l in m.modules() if isinstance(l, V.Dropout)] == [0.5, 0.5]
    assert m(torch.zeros(5, 3, 32, 32)).shape == (5, 10)
    assert conv_widths(V.slim_vgg11(width=0.5)) == [16, 32, 32, 32, 64, 64, 128, 128]


def test_seeded_construction_and_bad_parameters():
    a, b = V.build_model("slim_vgg11", 0.25, seed=7), V.build_model("slim_vgg11", 0.25, seed=7)
    c = V.build_model("slim_vgg11", 0.25, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    with pytest.raises(ValueError, match=r"width.*\(0, 16\]"):
        V.vgg11(width=0)
    with pytest.raises(ValueError, match="arch"):
        V.build_model("resnet18")
    with pytest.raises(ValueError, match="loss"):
        V.loss_fn("hinge")
    with pytest.raises(ValueError, match=r"dropout.*\[0, 1\)"):
        V.Dropout(1.0)


def test_authors_initialisation():
    """The authors' models/mini_vgg.py: Kaiming-normal fan-out convolutions, linear N(0, 0.01²), zero biases."""
    m = V.vgg11(width=1.0)
    convs = [l for l in m.modules() if isinstance(l, nn.Conv2d)]
    conv = convs[5]  # 512 → 512: std sqrt(2 / (9 · 512)), 2.4M draws
    assert conv.weight.std().item() == pytest.approx((2.0 / (9 * 512)) ** 0.5, rel=0.01)
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)
    lins = [l for l in m.modules() if isinstance(l, nn.Linear)]
    assert lins[0].weight.std().item() == pytest.approx(0.01, rel=0.01)   # 262k draws
    assert all(torch.count_nonzero(l.bias) == 0 for l in lins)
    # narrower: the same per-layer gain 0.01·sqrt(fan-in at width 1) with "authors_width", exactly 0.01 with "authors"
    s = V.slim_vgg11(width=0.25, init="authors_width")
    assert [l for l in s.modules() if isinstance(l, nn.Linear)][0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    s = V.slim_vgg11(width=0.25)
    assert [l for l in s.modules() if isinstance(l, nn.Linear)][0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    t = V.slim_vgg11(width=1.0, init="torch")   # torch's Kaiming-uniform(a=√5): std 1/sqrt(3 · fan-in)
    assert [l for l in t.modules() if isinstance(l, nn.Linear)][0].weight.std().item() == \
        pytest.approx((1 / (3 * 256)) ** 0.5, rel=0.02)
    with pytest.raises(ValueError, match="init"):
        V.build_model("slim_vgg11", init="xavier")


def test_classifier_order_is_the_authors():
    """Linear → ReLU → Dropout → Linear → ReLU → Dropout → Linear."""
    m = V.slim_vgg11()
    assert [type(l).__name__ for l in m.classifier] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout",
                                                        "Linear"]


def test_explicit_masks_equal_generator_masks():
    """forward(x, masks) with masks from draw_masks(generator) = forward(x) drawing from the same generator."""
    m = V.slim_vgg11(width=0.25)
    m.train()
    x = torch.randn(4, 3, 32, 32)
    masks = m.draw_masks(4, torch.Generator().manual_seed(3))
    assert [t.shape for t in masks] == [(4, 32), (4, 32)]
    m.set_generator(torch.Generator().manual_seed(3))
    torch.testing.assert_close(m(x, masks), m(x), rtol=0, atol=0)
    m.eval()
    torch.testing.assert_close(m(x, masks), m(x), rtol=0, atol=0)   # evaluation mode ignores masks


def test_dropout_uses_the_given_generator():
    d = V.Dropout(0.5)
    x = torch.ones(2000)
    d.generator = torch.Generator().manual_seed(0)
    y1 = d(x)
    d.generator = torch.Generator().manual_seed(0)
    y2 = d(x)
    assert torch.equal(y1, y2)
    assert set(y1.unique().tolist()) == {0.0, 2.0}
    assert abs((y1 == 0).float().mean().item() - 0.5) < 0.05  # 2000 draws: 4.5 standard deviations
    d.eval()
    assert torch.equal(d(x), x)


def test_losses_against_hand_computed_values():
    """Two examples, three classes, written out by hand."""
    z = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])
    y = torch.tensor([2, 0])
    # the authors' loss: mean over the batch of ½ Σ_k (z_k − e_y,k)²
    #   example 1: ½ (0.25 + 1 + 1) = 1.125;  example 2: ½ (0 + 0 + 0) = 0  →  0.5625
    assert V.loss_fn("mse")(z, y).item() == pytest.approx(0.5625, rel=1e-7)
    # the per-element mean: (0.25 + 1 + 1 + 0) / 6 = 0.375 = (2/K) · 0.5625 with K = 3
    assert V.loss_fn("mse_mean")(z, y).item() == pytest.approx(0.375, rel=1e-7)
    # cross-entropy: log(e^0.5 + e^-1 + e^2) − 2 and log(e + 2) − 1, averaged
    import math
    ce = (math.log(math.exp(0.5) + math.exp(-1) + math.exp(2)) - 2 + math.log(math.e + 2) - 1) / 2
    assert V.loss_fn("ce")(z, y).item() == pytest.approx(ce, rel=1e-6)
    # regression targets (label noise) replace the one-hot rows
    t = torch.tensor([[0.0, 0.0, 1.5], [1.0, 0.5, 0.0]])
    # ½ (0.25 + 1 + 0.25) = 0.75 and ½ (0.25) = 0.125 → 0.4375
    assert V.target_loss("mse", z, y, t).item() == pytest.approx(0.4375, rel=1e-7)
    with pytest.raises(ValueError, match="squared loss"):
        V.target_loss("ce", z, y, t)


def test_losses_against_formulas():
    torch.manual_seed(0)
    z, y = torch.randn(6, 10), torch.tensor([0, 3, 9, 1, 1, 5])
    onehot = torch.zeros(6, 10)
    onehot[torch.arange(6), y] = 1
    assert V.loss_fn("mse")(z, y).item() == pytest.approx(0.5 * ((z - onehot) ** 2).sum().item() / 6, rel=1e-6)
    assert V.loss_fn("mse_mean")(z, y).item() == pytest.approx(F.mse_loss(z, onehot).item(), rel=1e-6)
    ce = -(z.log_softmax(1)[torch.arange(6), y]).mean()
    assert V.loss_fn("ce")(z, y).item() == pytest.approx(ce.item(), rel=1e-6)
    for name in V.LOSSES:
        assert V.per_example_loss(name, z, y).mean().item() == pytest.approx(V.loss_fn(name)(z, y).item(), rel=1e-6)
