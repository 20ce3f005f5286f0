"""Shared helpers of the empirics tests: a synthetic CIFAR-like dataset, a tiny configuration, and an
interruption at a chosen step."""
import numpy as np

from lrdecay.empirics import data as D
from lrdecay.empirics import train as T


def tiny_arrays(n_train=60, n_test=30, seed=0) -> D.CifarArrays:
    """Synthetic 'CIFAR': class k is a noisy image whose colour depends on k."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        base = np.stack([(y * 25) % 256, (255 - y * 25) % 256, (y * 70) % 256], 1)[:, :, None, None]
        x = np.clip(base + rng.normal(0, 40, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
        return x, y

    (x, y), (xt, yt) = make(n_train), make(n_test)
    return D.CifarArrays(x, y, xt, yt)


def tiny_cfg(**kw) -> T.TrainConfig:
    base = dict(arch="slim_vgg11", width=0.125, dropout=0.5, loss="mse", lr=0.1, batch_size=16, epochs=4,
                ckpt_every=2, decay_epochs=(2,), train_size=None, eval_every=1, eval_batch=32, seed=5)
    base.update(kw)
    return T.TrainConfig(**base)


class Interrupt(Exception):
    pass


def _stop_at(step):
    def cb(s):
        if s == step:
            raise Interrupt

    return cb
