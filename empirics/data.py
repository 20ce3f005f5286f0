"""CIFAR-10 as tensors in memory: loading, class-balanced subsets, on-device augmentation.

Two readers share one result (:class:`CifarArrays`, uint8 images ``N × 3 × 32 × 32`` and int64 labels):

* **torchvision** (``source="torchvision"``): ``torchvision.datasets.CIFAR10``, which checks every file
  against the official MD5 sums and can download the dataset (``download=True``, needs network).
* **pickle** (``source="pickle"``): this module's reader of the "python version" layout from any
  directory. It checks structure instead of checksums (keys, shapes, dtypes, label range) and unpickles
  with an allow-list (dicts, lists, strings, numpy arrays only). It is the reader for the offline subset
  in ``../shared/data/cifar10-subset``, whose batches lack the ``filenames`` key and therefore fail
  torchvision's checksum test although pixels and labels are the official ones.

``source="auto"`` (the default) uses torchvision when the files pass its checksum test (or when a
download is asked for) and the pickle reader otherwise; :attr:`CifarArrays.verified` records which.

The training set lives on the device as uint8 (150 MB for all of CIFAR-10); :func:`augment` draws a
random crop (zero padding 4, as ``transforms.RandomCrop(32, padding=4)``) and a horizontal flip for a
whole batch at once from a generator the caller owns, and :func:`normalize` maps uint8 to
``(x/255 − mean)/std`` per channel.
"""
from __future__ import annotations

import os
import pickle
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LAYOUT_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
EXPECTED_FILES = TRAIN_FILES + TEST_FILES + (META_FILE,)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and standard deviation of the 50,000 official training images (pixel values in [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
ENV_VAR = "LRDECAY_CIFAR10"
SOURCES = ("auto", "torchvision", "pickle")

HOW_TO_OBTAIN = (
    "To obtain CIFAR-10: on a machine with network access run\n"
    "    python -c \"import torchvision; torchvision.datasets.CIFAR10('DIR', download=True)\"\n"
    "(or pass --download), or fetch and unpack the official tarball\n"
    "    https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz  (md5 c58f30108f718f92721af3b95e74349a)\n"
    f"then point --data or ${ENV_VAR} at DIR (the directory holding {LAYOUT_DIR}/)."
)


class CIFARNotFoundError(FileNotFoundError):
    """The CIFAR-10 python-version files are not where they were looked for."""


class CIFARFormatError(ValueError):
    """A CIFAR-10 file exists but is not a valid python-version batch."""


def _expected_layout() -> str:
    return (f"the CIFAR-10 'python version' layout: a directory {LAYOUT_DIR}/ holding "
            + ", ".join(EXPECTED_FILES)
            + " (each a pickled dict; batches with keys 'data' (N × 3072 uint8) and 'labels' (N ints))")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``$LRDECAY_CIFAR10`` if set, else ``<repo>/../shared/data/cifar10-subset`` (the offline subset)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return (repo_root() / ".." / "shared" / "data" / "cifar10-subset").resolve()


def find_batches_dir(root: str | os.PathLike | None = None) -> Path:
    """The directory holding the batch files: ``root/cifar-10-batches-py`` or ``root`` itself."""
    root = default_data_dir() if root is None else Path(root).expanduser()
    for cand in (root / LAYOUT_DIR, root):
        if cand.is_dir() and any((cand / f).is_file() for f in EXPECTED_FILES):
            return cand
    raise CIFARNotFoundError(
        f"CIFAR-10 not found at {root}: expected {_expected_layout()}.\n{HOW_TO_OBTAIN}")


# ----------------------------------------------------------------------------- the pickle reader
class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds the objects a CIFAR batch contains (no arbitrary code)."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # bytes written by Python 3 at protocol 2
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise CIFARNotFoundError(
            f"missing file {path.name} in {path.parent}: expected {_expected_layout()}.\n{HOW_TO_OBTAIN}")
    try:
        with open(path, "rb") as fh:
            obj = _BatchUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # truncated, garbage, or disallowed content
        raise CIFARFormatError(
            f"{path} is not a readable CIFAR-10 python-version file ({type(exc).__name__}: {exc}); "
            f"expected {_expected_layout()}.\n{HOW_TO_OBTAIN}") from exc
    if not isinstance(obj, dict):
        raise CIFARFormatError(f"{path}: expected a pickled dict, found {type(obj).__name__}.\n{HOW_TO_OBTAIN}")
    return obj


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one python-version batch: uint8 images ``N × 3 × 32 × 32`` and int64 labels in 0..9."""
    path = Path(path)
    d = _unpickle(path)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise CIFARFormatError(f"{path}: keys {missing} missing (found {sorted(d)}); "
                               f"expected {_expected_layout()}.\n{HOW_TO_OBTAIN}")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CIFARFormatError(f"{path}: 'data' must be an N × 3072 uint8 array, found {data.dtype} {data.shape}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise CIFARFormatError(f"{path}: 'labels' must hold {data.shape[0]} integers, found {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CIFARFormatError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_classes(batches: Path) -> tuple[str, ...]:
    p = batches / META_FILE
    if not p.is_file():
        return CLASSES
    names = _unpickle(p).get("label_names")
    if not (isinstance(names, list) and len(names) == 10 and all(isinstance(n, str) for n in names)):
        raise CIFARFormatError(f"{p}: 'label_names' must be a list of 10 strings")
    return tuple(names)


@dataclass
class CifarArrays:
    """CIFAR-10 in memory (numpy): images ``N × 3 × 32 × 32`` uint8, labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = CLASSES
    directory: str = ""
    source: str = "pickle"          # the reader used: "torchvision" or "pickle"
    verified: bool = False          # files matched the official MD5 sums
    note: str = ""

    def describe(self) -> dict:
        return {"directory": self.directory, "source": self.source, "verified": self.verified,
                "n_train": int(len(self.y_train)), "n_test": int(len(self.y_test)), "note": self.note}


def _torchvision_cifar():
    from torchvision.datasets import CIFAR10

    return CIFAR10


def passes_official_checksums(batches: Path) -> bool:
    """Whether every file matches torchvision's MD5 list for the official release."""
    from torchvision.datasets.utils import check_integrity

    cls = _torchvision_cifar()
    files = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
    return all(check_integrity(str(batches / name), md5) for name, md5 in files)


def _load_torchvision(root: Path, download: bool) -> CifarArrays:
    cls = _torchvision_cifar()
    try:
        tr = cls(str(root), train=True, download=download)
        te = cls(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise CIFARNotFoundError(
            f"torchvision could not load CIFAR-10 from {root} ({exc}). It needs the official, unmodified "
            f"files: {_expected_layout()}. A modified copy (such as the offline subset, which lacks the "
            f"'filenames' key) loads with source='pickle'.\n{HOW_TO_OBTAIN}") from exc
    to_nchw = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.uint8).transpose(0, 3, 1, 2))  # noqa: E731
    return CifarArrays(to_nchw(tr.data), np.asarray(tr.targets, np.int64), to_nchw(te.data),
                       np.asarray(te.targets, np.int64), tuple(tr.classes), str(root / LAYOUT_DIR),
                       "torchvision", True, "official files (MD5 verified by torchvision)")


def _load_pickle(batches: Path, note: str = "") -> CifarArrays:
    present = [f for f in TRAIN_FILES + TEST_FILES if (batches / f).is_file()]
    absent = [f for f in TRAIN_FILES + TEST_FILES if f not in present]
    if absent:
        raise CIFARNotFoundError(
            f"CIFAR-10 in {batches} is incomplete: missing {absent}; expected {_expected_layout()}.\n{HOW_TO_OBTAIN}")
    tr = [read_batch(batches / f) for f in TRAIN_FILES]
    te = read_batch(batches / TEST_FILES[0])
    return CifarArrays(np.concatenate([a for a, _ in tr]), np.concatenate([b for _, b in tr]), te[0], te[1],
                       _read_classes(batches), str(batches), "pickle", False, note)


def load_cifar10(root: str | os.PathLike | None = None, source: str = "auto", download: bool = False) -> CifarArrays:
    """Load CIFAR-10 from ``root`` (default :func:`default_data_dir`).

    ``root`` may be the directory that holds ``cifar-10-batches-py/`` or that directory itself.
    ``source``: ``"auto"`` (torchvision if the files pass its MD5 check or ``download`` is set, else the
    pickle reader), ``"torchvision"`` or ``"pickle"``. Raises :class:`CIFARNotFoundError` (missing
    files) or :class:`CIFARFormatError` (unreadable files), both naming the expected files and how to
    obtain them.
    """
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {SOURCES}, got {source!r}")
    root = default_data_dir() if root is None else Path(root).expanduser()
    if download:
        if source == "pickle":
            raise ValueError("download: only the torchvision reader downloads; use source='auto' or 'torchvision'")
        tv_root = root.parent if root.name == LAYOUT_DIR else root
        return _load_torchvision(tv_root, download=True)
    batches = find_batches_dir(root)
    if source == "torchvision":
        return _load_torchvision(batches.parent, download=False)
    if source == "auto" and passes_official_checksums(batches):
        return _load_torchvision(batches.parent, download=False)
    note = ("" if source == "pickle" else
            "files differ from the official MD5 sums (e.g. the offline subset, which lacks the 'filenames' "
            "key); read by the pickle reader, which checked their structure instead")
    return _load_pickle(batches, note)


# ----------------------------------------------------------------------------- subsets
def balanced_indices(labels: np.ndarray, size: int | None = None, per_class: int | None = None,
                     seed: int = 0, num_classes: int = 10) -> np.ndarray:
    """Indices of a class-balanced random subset, sorted.

    ``per_class=k``: exactly ``k`` images of every class (``ValueError`` if a class has fewer).
    ``size=n``: ``n`` images as balanced as the data allows — each class gets ``⌊n/10⌋`` or one more,
    and classes with too few images give their shortfall to the others (water filling). Neither: all
    indices. Within a class the images are a uniformly random choice driven by ``seed`` alone.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if size is not None and per_class is not None:
        raise ValueError("size and per_class: give at most one")
    if per_class is not None:
        if not (isinstance(per_class, (int, np.integer)) and per_class >= 1):
            raise ValueError(f"per_class: expected an integer >= 1, got {per_class!r}")
        if counts.min() < per_class:
            raise ValueError(f"per_class: {per_class} requested but the classes hold {counts.tolist()} images; "
                             f"accepted range 1..{int(counts.min())} (or use size= for a near-balanced subset)")
        quota = np.full(num_classes, per_class)
    elif size is not None:
        if not (isinstance(size, (int, np.integer)) and 1 <= size <= len(labels)):
            raise ValueError(f"size: expected an integer in 1..{len(labels)}, got {size!r}")
        quota = np.zeros(num_classes, dtype=int)
        left, open_ = int(size), [c for c in range(num_classes) if counts[c] > 0]
        while left > 0:  # water filling: spread what is left over the classes that still have images
            share = max(1, left // len(open_))
            for c in list(open_):
                take = min(share, counts[c] - quota[c], left)
                quota[c] += take
                left -= take
                if quota[c] == counts[c]:
                    open_.remove(c)
                if left == 0:
                    break
    else:
        return np.arange(len(labels))
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[: quota[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(chosen))


DRAWS = ("balanced", "authors")
TEST_ON = ("test", "train")


def authors_indices(labels: np.ndarray, per_class: int, num_classes: int, seed: int) -> np.ndarray:
    """The authors' random per-class draw (``utils/load.py``, ``data_subset`` with ``rand``): for each class
    in order, ``np.random.default_rng(seed).choice(n_c, per_class, replace=False)`` of its images in file
    order — a generator made afresh for every class, as theirs is. (Their code falls back to numpy's global,
    unseeded generator when the seed is 0; here the seed is always used.)"""
    labels = np.asarray(labels)
    out = []
    for c in range(num_classes):
        ind = np.flatnonzero(labels == c)
        if per_class > len(ind):
            raise ValueError(f"train_per_class: {per_class} requested but class {c} holds {len(ind)} images")
        out.append(ind[np.random.default_rng(seed).choice(len(ind), size=per_class, replace=False)])
    return np.concatenate(out)


# ----------------------------------------------------------------------------- tensors on the device
@dataclass
class CifarTensors:
    """The training and test sets as uint8 tensors on ``device`` (see :func:`to_tensors`)."""

    x_train: "torch.Tensor"  # noqa: F821  uint8, N × 3 × 32 × 32
    y_train: "torch.Tensor"  # noqa: F821  int64
    x_test: "torch.Tensor"  # noqa: F821
    y_test: "torch.Tensor"  # noqa: F821
    classes: tuple[str, ...] = CLASSES
    info: dict = field(default_factory=dict)

    @property
    def device(self):
        return self.x_train.device


def to_tensors(arrays: CifarArrays, device="cpu", train_size: int | None = None,
               train_per_class: int | None = None, test_size: int | None = None, seed: int = 0,
               classes: int | None = None, draw: str = "balanced", test_on: str = "test") -> CifarTensors:
    """Select class-balanced subsets (:func:`balanced_indices`, seeded) and move them to ``device``.

    ``classes=k``: only the first ``k`` classes (labels ``0..k-1``, the authors' ``--data-subset-classes k``),
    training and test images alike; the subset sizes then count images of those classes.
    ``draw="authors"``: the training images by :func:`authors_indices` (needs ``train_per_class``).
    ``test_on="train"``: the "test" set is every training image of the classes (the authors'
    ``--test-with-train``; theirs applies the random crops and flips to it, here it is evaluated as is).
    """
    import torch

    k = len(arrays.classes) if classes is None else int(classes)
    if not 2 <= k <= len(arrays.classes):
        raise ValueError(f"classes: expected an integer in 2..{len(arrays.classes)} or none, got {classes!r}")
    keep_tr = np.flatnonzero(arrays.y_train < k)
    keep_te = np.flatnonzero(arrays.y_test < k)
    if draw not in DRAWS or test_on not in TEST_ON:
        raise ValueError(f"draw, test_on: expected one of {DRAWS} and one of {TEST_ON}, got {draw!r}, {test_on!r}")
    if draw == "authors":
        if train_per_class is None:
            raise ValueError("train_per_class: the authors' draw takes a number of images per class (train_size "
                             "must be none)")
        itr = keep_tr[authors_indices(arrays.y_train[keep_tr], train_per_class, k, seed)]
    else:
        itr = keep_tr[balanced_indices(arrays.y_train[keep_tr], train_size, train_per_class, seed, num_classes=k)]
    if test_on == "train":
        arrays = dataclasses.replace(arrays, x_test=arrays.x_train, y_test=arrays.y_train)
        keep_te = keep_tr
    ite = keep_te[balanced_indices(arrays.y_test[keep_te], test_size, None, seed + 1, num_classes=k)]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    info = arrays.describe() | {
        "train_size": int(len(itr)), "test_size": int(len(ite)), "subset_seed": int(seed),
        "train_per_class": np.bincount(arrays.y_train[itr], minlength=k).tolist(),
    }
    info["test_per_class"] = np.bincount(arrays.y_test[ite], minlength=k).tolist()
    if draw != "balanced" or test_on != "test":
        info |= {"draw": draw, "test_on": test_on}
    if classes is not None:
        info |= {"classes": k, "class_names": list(arrays.classes[:k])}
    return CifarTensors(t(arrays.x_train[itr]), t(arrays.y_train[itr]), t(arrays.x_test[ite]),
                        t(arrays.y_test[ite]), tuple(arrays.classes[:k]), info)


_STATS: dict = {}


def normalize(x):
    """uint8 ``B × 3 × H × W`` → float32 ``(x/255 − MEAN)/STD`` per channel, in channels-last memory layout
    (same values and shape; on 2 CPU threads the slim VGG-11 evaluates about 2.6× and trains about 1.1×
    faster in this layout)."""
    import torch

    key = str(x.device)
    if key not in _STATS:  # per-device constants, made once
        _STATS[key] = (torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1),
                       torch.tensor(STD, device=x.device).view(1, 3, 1, 1))
    mean, std = _STATS[key]
    return ((x.float().div_(255.0) - mean) / std).contiguous(memory_format=torch.channels_last)


def augment(x, generator, pad: int = 4, flip: bool = True):
    """Random crop with zero padding ``pad`` and (optionally) horizontal flip of a whole batch.

    Each image gets its own offsets ``(dy, dx) ∈ {0..2·pad}²`` and flip bit, drawn from ``generator``
    (on ``x``'s device) in a fixed order: offsets, then flips — so the stream does not depend on how
    the work is split elsewhere. Equivalent to ``RandomCrop(32, padding=pad)`` then
    ``RandomHorizontalFlip()`` applied image by image.
    """
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    dev = x.device
    if pad > 0:  # two gathers (rows, then columns) of the zero-padded batch
        xp = F.pad(x, (pad, pad, pad, pad))
        off = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=dev)
        rows = (off[0, :, None] + torch.arange(h, device=dev)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
        cols = (off[1, :, None] + torch.arange(w, device=dev)).view(n, 1, 1, w).expand(n, c, h, w)
        x = xp.gather(2, rows).gather(3, cols)
    if flip:
        f = torch.rand(n, generator=generator, device=dev) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x


def write_python_batches(directory, x_train, y_train, x_test, y_test, classes=CLASSES) -> Path:
    """Write arrays in the python-version layout under ``directory/cifar-10-batches-py`` and return that path.

    Five training batches (the training images split in order), one test batch and ``batches.meta``,
    pickled (protocol 2) as the official files are, without the ``filenames`` key. Images are
    ``N × 3 × 32 × 32`` uint8 (stored as rows of the red, green and blue planes). Useful to save a subset.
    """
    from lrdecay.theory.io import atomic_write_bytes

    out = Path(directory) / LAYOUT_DIR
    x_train, x_test = np.asarray(x_train, np.uint8), np.asarray(x_test, np.uint8)

    def dump(name, obj):
        atomic_write_bytes(out / name, pickle.dumps(obj, protocol=2))

    for i, idx in enumerate(np.array_split(np.arange(len(y_train)), len(TRAIN_FILES)), start=1):
        dump(f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": [int(v) for v in y_train[idx]],
                                 "data": x_train[idx].reshape(len(idx), 3072)})
    dump(TEST_FILES[0], {"batch_label": "testing batch 1 of 1", "labels": [int(v) for v in y_test],
                         "data": x_test.reshape(len(x_test), 3072)})
    dump(META_FILE, {"label_names": list(classes), "num_cases_per_batch": int(len(y_test)), "num_vis": 3072})
    return out
