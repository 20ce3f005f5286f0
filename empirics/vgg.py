r"""The VGG-11 family for 32×32 CIFAR-10 images, and the two losses of the experiments.

VGG configuration A (Simonyan & Zisserman 2015, Table 1) is eight 3×3 convolutions with five 2×2
max-pools::

    64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M

On a 32×32 input the five pools leave a 1×1 map, so the classifier sees ``c_last`` features. Two
members are provided:

* :func:`vgg11` — configuration A at widths ``round(width · c)``, optional batch norm, classifier
  ``c_last → h → h → 10`` with ``h = round(512 · width)`` and dropout before each hidden layer;
* :func:`slim_vgg11` — the authors' slim variant: widths 32-64-64-64-128-128-256-256 (times
  ``width``), no batch norm, classifier ``256 → 128 → 128 → 10`` with dropout 0.5.

Dropout draws its masks from a ``torch.Generator`` owned by the training loop
(:meth:`VGG.set_generator`), never from torch's global generator, so a checkpoint that stores that
generator's state resumes bit for bit.

Losses (``logits`` :math:`z \in \mathbb{R}^{B\times 10}`, labels :math:`y`):

* ``"mse"``: :math:`\frac{1}{10B}\sum_{b,k} (z_{bk} - [y_b = k])^2` (``nn.MSELoss`` on one-hot targets,
  the authors' choice);
* ``"ce"``: :math:`\frac1B \sum_b -\log \mathrm{softmax}(z_b)_{y_b}`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CFG_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
CFG_SLIM = (32, "M", 64, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M")
ARCHS = ("vgg11", "slim_vgg11")
LOSSES = ("mse", "ce")


class Dropout(nn.Module):
    """Inverted dropout whose masks come from ``self.generator`` (set by the training loop).

    Training mode: :math:`x \\mapsto x \\odot m / (1-p)`, :math:`m_i \\sim \\mathrm{Bernoulli}(1-p)`.
    Evaluation mode: identity.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGG(nn.Module):
    """Convolutional stack from ``cfg`` (ints: 3×3 conv + [BN] + ReLU; ``"M"``: 2×2 max-pool), then an MLP."""

    def __init__(self, cfg, hidden=(512, 512), num_classes: int = 10, batch_norm: bool = False,
                 dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = []
        for h in hidden:
            head += [Dropout(dropout), nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        head.append(nn.Linear(c, num_classes))
        self.classifier = nn.Sequential(*head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation for convolutions (normal, std sqrt(2 / (9 · out_channels))), zero biases.

        Without batch norm, torch's default conv initialisation shrinks the signal layer by layer and
        a plain eight-layer stack barely moves at first; He initialisation keeps its scale.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def set_generator(self, generator: torch.Generator | None) -> None:
        for m in self.modules():
            if isinstance(m, Dropout):
                m.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


def vgg11(width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5, num_classes: int = 10) -> VGG:
    """VGG-11 (configuration A) at ``width`` times the standard channel counts."""
    _check_width(width)
    cfg = tuple(v if v == "M" else _scaled(v, width) for v in CFG_A)
    h = _scaled(512, width)
    return VGG(cfg, hidden=(h, h), num_classes=num_classes, batch_norm=batch_norm, dropout=dropout)


def slim_vgg11(width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5, num_classes: int = 10) -> VGG:
    """The authors' slim VGG-11: 32-64-64-64-128-128-256-256, classifier 256→128→128→10 (times ``width``)."""
    _check_width(width)
    cfg = tuple(v if v == "M" else _scaled(v, width) for v in CFG_SLIM)
    h = _scaled(128, width)
    return VGG(cfg, hidden=(h, h), num_classes=num_classes, batch_norm=batch_norm, dropout=dropout)


def _check_width(width: float) -> None:
    if not (isinstance(width, (int, float)) and math.isfinite(width) and 0 < width <= 16):
        raise ValueError(f"width: the channel multiplier must be in (0, 16], got {width!r}")


def build_model(arch: str, width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5,
                num_classes: int = 10, seed: int | None = None) -> VGG:
    """Build ``arch`` (one of :data:`ARCHS`); with ``seed`` the initial weights depend on it alone."""
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {ARCHS}, got {arch!r}")
    make = vgg11 if arch == "vgg11" else slim_vgg11
    if seed is None:
        return make(width, batch_norm, dropout, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make(width, batch_norm, dropout, num_classes)


def loss_fn(name: str):
    """The per-batch mean loss ``f(logits, labels)`` named ``name`` (see the module docstring)."""
    if name == "mse":
        return mse_onehot
    if name == "ce":
        return F.cross_entropy
    raise ValueError(f"loss: expected one of {LOSSES}, got {name!r}")


def mse_onehot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error against one-hot targets, averaged over batch and classes."""
    target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return F.mse_loss(logits, target)


def per_example_loss(name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example losses whose mean over the batch is ``loss_fn(name)(logits, labels)``."""
    if name == "mse":
        target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
        return ((logits - target) ** 2).mean(-1)
    if name == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    raise ValueError(f"loss: expected one of {LOSSES}, got {name!r}")


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
