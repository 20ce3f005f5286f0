"""The VGG-11 family: layer widths, parameter counts, output shapes, dropout, losses."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from empirics import vgg as V


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


def test_he_initialisation_scale():
    m = V.vgg11(width=1.0)
    conv = [l for l in m.modules() if isinstance(l, nn.Conv2d)][5]  # 512 → 512
    expected = (2.0 / (9 * 512)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.02)


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


def test_losses_against_formulas():
    torch.manual_seed(0)
    z, y = torch.randn(6, 10), torch.tensor([0, 3, 9, 1, 1, 5])
    onehot = torch.zeros(6, 10)
    onehot[torch.arange(6), y] = 1
    assert V.loss_fn("mse")(z, y).item() == pytest.approx(((z - onehot) ** 2).sum().item() / 60, rel=1e-6)
    ce = -(z.log_softmax(1)[torch.arange(6), y]).mean()
    assert V.loss_fn("ce")(z, y).item() == pytest.approx(ce.item(), rel=1e-6)
    for name in V.LOSSES:
        assert V.per_example_loss(name, z, y).mean().item() == pytest.approx(V.loss_fn(name)(z, y).item(), rel=1e-6)
    assert F.mse_loss(z, onehot).item() == pytest.approx(V.mse_onehot(z, y).item())
