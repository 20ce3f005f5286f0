r"""The VGG-11 family for 32×32 CIFAR-10 images, its initialisations, and the losses of the experiments.

VGG configuration A (Simonyan & Zisserman 2015, Table 1) is eight 3×3 convolutions with five 2×2
max-pools::

    64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M

On a 32×32 input the five pools leave a 1×1 map, so the classifier sees ``c_last`` features. Two
members are provided:

* :func:`vgg11` — configuration A at widths ``round(width · c)``, optional batch norm, classifier
  ``c_last → h → h → 10`` with ``h = round(512 · width)``;
* :func:`slim_vgg11` — the authors' slim variant: widths 32-64-64-64-128-128-256-256 (times
  ``width``), no batch norm, classifier ``256 → 128 → 128 → 10``.

The classifier is ``Linear → ReLU → Dropout → Linear → ReLU → Dropout → Linear`` (the authors' order:
dropout acts on the hidden activations, with probability 0.5 by default).

Dropout masks are never drawn from torch's global generator. The training loop draws them itself
(:meth:`VGG.draw_masks`, from the run's own ``torch.Generator``) and passes them to
``forward(x, masks)``, so that a sequential run and a batched run (``torch.func.vmap`` over stacked
parameters) use identical masks; a model in training mode called without masks draws them from the
generator set by :meth:`VGG.set_generator`.

Initialisations (``init``):

* ``"authors"`` (the authors' code, ``models/mini_vgg.py``): convolutions Kaiming-normal in fan-out
  mode, :math:`W \sim \mathcal N(0, 2/(9\,c_\text{out}))`; linear layers :math:`W \sim \mathcal N(0, 0.01^2)`;
  all biases zero; batch-norm scale 1, shift 0;
* ``"authors_width"``: the same, with the linear layers' standard deviation :math:`0.01/\sqrt{w}` at
  width multiplier :math:`w` — each linear layer keeps the gain :math:`0.01\sqrt{\text{fan-in}}` it has in
  the authors' full-width network (identical to ``"authors"`` at :math:`w = 1`). With exactly 0.01 a
  narrow network starts much closer to the output-zero saddle and needs far longer to leave it;
* ``"torch"``: torch's defaults (Kaiming-uniform with :math:`a=\sqrt5`, uniform biases).

Losses (``logits`` :math:`z \in \mathbb{R}^{B\times K}`, labels :math:`y`, one-hot
:math:`e_{y}`, optional regression targets :math:`t_b` replacing :math:`e_{y_b}` — label-noise SGD
uses :math:`t_b = e_{y_b} + \sigma\xi_b`):

* ``"mse"`` (the authors' ``MSELoss`` in ``utils/load.py``):
  :math:`\frac1B\sum_b \tfrac12\sum_k (z_{bk} - t_{bk})^2`;
* ``"mse_mean"``: the per-element mean :math:`\frac{1}{KB}\sum_{b,k} (z_{bk} - t_{bk})^2`
  (``nn.MSELoss`` on one-hot targets; :math:`2/K` times ``"mse"``, i.e. a fifth of it for 10 classes);
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
LOSSES = ("mse", "mse_mean", "ce")
SQUARED_LOSSES = ("mse", "mse_mean")
INITS = ("authors", "authors_width", "torch")


class Dropout(nn.Module):
    """Inverted dropout with caller-supplied masks.

    ``forward(x, mask)``: :math:`x \\odot m` with :math:`m = b/(1-p)`, :math:`b_i \\sim \\mathrm{Bernoulli}(1-p)`
    (see :meth:`draw`). Training mode without a mask: a mask drawn from ``self.generator``.
    Evaluation mode: identity.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def draw(self, shape, generator, device=None, dtype=torch.float32) -> torch.Tensor:
        """A mask :math:`b/(1-p)` of ``shape``; :math:`b \\sim \\mathrm{Bernoulli}(1-p)` from ``generator``."""
        keep = torch.empty(shape, device=device, dtype=dtype).bernoulli_(1.0 - self.p, generator=generator)
        return keep / (1.0 - self.p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if mask is None:
            mask = self.draw(x.shape, self.generator, x.device, x.dtype)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGG(nn.Module):
    """Convolutional stack from ``cfg`` (ints: 3×3 conv + [BN] + ReLU; ``"M"``: 2×2 max-pool), then an MLP."""

    def __init__(self, cfg, hidden=(512, 512), num_classes: int = 10, batch_norm: bool = False,
                 dropout: float = 0.5, in_channels: int = 3, init: str = "authors", linear_std: float = 0.01):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
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
            head += [nn.Linear(c, h), nn.ReLU(inplace=True), Dropout(dropout)]
            c = h
        head.append(nn.Linear(c, num_classes))
        self.classifier = nn.Sequential(*head)
        self.init = init
        self.linear_std = float(linear_std)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ``self.init`` says (see the module docstring)."""
        for m in self.modules():
            if self.init == "torch":
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
                    m.reset_parameters()
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, self.linear_std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def dropouts(self) -> list[Dropout]:
        return [m for m in self.classifier if isinstance(m, Dropout)]

    def draw_masks(self, batch: int, generator, device=None) -> tuple[torch.Tensor, ...]:
        """One mask per dropout layer for a batch of ``batch`` images, in layer order (empty if p = 0)."""
        out = []
        for m in self.classifier:
            if isinstance(m, nn.Linear):
                width = m.out_features
            if isinstance(m, Dropout) and m.p > 0:
                out.append(m.draw((batch, width), generator, device))
        return tuple(out)

    def set_generator(self, generator: torch.Generator | None) -> None:
        for m in self.dropouts:
            m.generator = generator

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        j = 0
        for m in self.classifier:
            if isinstance(m, Dropout):
                if masks is not None and m.p > 0 and self.training:
                    x = m(x, masks[j])
                    j += 1
                else:
                    x = m(x)
            else:
                x = m(x)
        return x


def vgg11(width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5, num_classes: int = 10,
          init: str = "authors") -> VGG:
    """VGG-11 (configuration A) at ``width`` times the standard channel counts."""
    _check_width(width)
    cfg = tuple(v if v == "M" else _scaled(v, width) for v in CFG_A)
    h = _scaled(512, width)
    return VGG(cfg, hidden=(h, h), num_classes=num_classes, batch_norm=batch_norm, dropout=dropout, init=init,
               linear_std=_linear_std(init, width))


def slim_vgg11(width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5, num_classes: int = 10,
               init: str = "authors") -> VGG:
    """The authors' slim VGG-11: 32-64-64-64-128-128-256-256, classifier 256→128→128→10 (times ``width``)."""
    _check_width(width)
    cfg = tuple(v if v == "M" else _scaled(v, width) for v in CFG_SLIM)
    h = _scaled(128, width)
    return VGG(cfg, hidden=(h, h), num_classes=num_classes, batch_norm=batch_norm, dropout=dropout, init=init,
               linear_std=_linear_std(init, width))


def _linear_std(init: str, width: float) -> float:
    """Standard deviation of the linear layers' weights under ``init`` at width multiplier ``width``."""
    return 0.01 / math.sqrt(width) if init == "authors_width" else 0.01


def _check_width(width: float) -> None:
    if not (isinstance(width, (int, float)) and math.isfinite(width) and 0 < width <= 16):
        raise ValueError(f"width: the channel multiplier must be in (0, 16], got {width!r}")


def build_model(arch: str, width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5,
                num_classes: int = 10, seed: int | None = None, init: str = "authors") -> VGG:
    """Build ``arch`` (one of :data:`ARCHS`); with ``seed`` the initial weights depend on it alone."""
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {ARCHS}, got {arch!r}")
    make = vgg11 if arch == "vgg11" else slim_vgg11
    if seed is None:
        return make(width, batch_norm, dropout, num_classes, init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make(width, batch_norm, dropout, num_classes, init)


def _check_loss(name: str) -> None:
    if name not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {name!r}")


def loss_fn(name: str):
    """The per-batch mean loss ``f(logits, labels)`` named ``name`` (see the module docstring)."""
    _check_loss(name)
    return lambda logits, labels: target_loss(name, logits, labels)


def onehot(labels: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    return F.one_hot(labels, num_classes).to(dtype)


def target_loss(name: str, logits: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor | None = None) -> torch.Tensor:
    """Batch loss ``name``; for the squared losses ``targets`` (``B × K``) replaces the one-hot labels.

    Works under ``torch.func.vmap`` when ``targets`` is given (``F.one_hot`` does not).
    """
    _check_loss(name)
    if name == "ce":
        if targets is not None:
            raise ValueError("loss: regression targets (label noise) need a squared loss, not 'ce'")
        return F.cross_entropy(logits, labels)
    t = onehot(labels, logits.shape[-1], logits.dtype) if targets is None else targets
    sq = (logits - t) ** 2
    return 0.5 * sq.sum(-1).mean() if name == "mse" else sq.mean()


def mse_onehot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The authors' loss: :math:`\\frac1B\\sum_b \\frac12 \\|z_b - e_{y_b}\\|^2`."""
    return target_loss("mse", logits, labels)


def per_example_loss(name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example losses whose mean over the batch is ``loss_fn(name)(logits, labels)``."""
    _check_loss(name)
    if name == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    sq = (logits - target) ** 2
    return 0.5 * sq.sum(-1) if name == "mse" else sq.mean(-1)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
