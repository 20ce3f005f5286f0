"""CIFAR-10 loading (hand-built files, the real subset, corrupt and missing files), subsets, augmentation."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lrdecay.empirics import data as D

REAL = D.default_data_dir()
has_real = pytest.mark.skipif(not (REAL / D.LAYOUT_DIR / "data_batch_1").is_file(),
                              reason=f"real CIFAR-10 subset not found at {REAL}")


def pixel(n, c, i, j):
    """A pixel value that identifies image, channel, row and column (mod 256)."""
    return (7 * n + 61 * c + 3 * i + 5 * j) % 256


def hand_built(tmp_path: Path, n_train=(3, 2, 2, 2, 1), n_test=4) -> tuple[Path, list[int], list[int]]:
    """Write the python-version layout by hand: rows are the R, G, B planes, row-major, as in the official files."""
    root = tmp_path / "cifar"
    d = root / D.LAYOUT_DIR
    d.mkdir(parents=True)
    y_train, y_test, start = [], [], 0

    def batch(first, count):
        data = np.zeros((count, 3072), np.uint8)
        for k in range(count):
            for c in range(3):
                for i in range(32):
                    for j in range(32):
                        data[k, 1024 * c + 32 * i + j] = pixel(first + k, c, i, j)
        return data

    for b, cnt in enumerate(n_train, start=1):
        labels = [(start + k) % 10 for k in range(cnt)]
        y_train += labels
        with open(d / f"data_batch_{b}", "wb") as fh:
            pickle.dump({"batch_label": f"training batch {b} of 5", "labels": labels, "data": batch(start, cnt)}, fh, 2)
        start += cnt
    y_test = [(9 - k) % 10 for k in range(n_test)]
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": y_test, "data": batch(1000, n_test)}, fh, 2)
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(D.CLASSES), "num_cases_per_batch": 10000, "num_vis": 3072}, fh, 2)
    return root, y_train, y_test


def test_pickle_reader_matches_hand_built_pixels(tmp_path):
    root, y_train, y_test = hand_built(tmp_path)
    a = D.load_cifar10(root, source="pickle")
    assert a.x_train.shape == (10, 3, 32, 32) and a.x_train.dtype == np.uint8
    assert a.y_train.tolist() == y_train and a.y_test.tolist() == y_test
    for n, c, i, j in [(0, 0, 0, 0), (3, 1, 5, 31), (9, 2, 31, 0), (6, 2, 17, 9)]:
        assert a.x_train[n, c, i, j] == pixel(n, c, i, j)
    assert a.x_test[2, 1, 4, 7] == pixel(1002, 1, 4, 7)
    assert a.classes == D.CLASSES and a.source == "pickle" and not a.verified


def test_auto_falls_back_to_pickle_reader_when_checksums_differ(tmp_path):
    root, *_ = hand_built(tmp_path)
    a = D.load_cifar10(root)  # files without 'filenames' fail torchvision's MD5 test by design
    assert a.source == "pickle" and not a.verified and "MD5" in a.note
    b = D.load_cifar10(root / D.LAYOUT_DIR)  # the batches directory itself is accepted too
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_torchvision_reader_refuses_modified_files_with_a_pointer(tmp_path):
    root, *_ = hand_built(tmp_path)
    with pytest.raises(D.CIFARNotFoundError, match="source='pickle'"):
        D.load_cifar10(root, source="torchvision")


def test_torchvision_reader_gives_same_arrays_as_pickle_reader(tmp_path, monkeypatch):
    """The torchvision branch (official files) converts NHWC to the same NCHW arrays as our reader."""
    import torchvision.datasets.cifar as tvc

    root, *_ = hand_built(tmp_path)
    monkeypatch.setattr(tvc.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    a = D.load_cifar10(root, source="torchvision")
    b = D.load_cifar10(root, source="pickle")
    assert a.source == "torchvision" and a.verified
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert a.classes == b.classes


def test_write_python_batches_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (23, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 23)
    xt, yt = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 5)
    D.write_python_batches(tmp_path, x, y, xt, yt)
    a = D.load_cifar10(tmp_path)
    np.testing.assert_array_equal(a.x_train, x)
    np.testing.assert_array_equal(a.y_test, yt)
    with open(tmp_path / D.LAYOUT_DIR / "data_batch_1", "rb") as fh:  # the official on-disk layout
        raw = pickle.load(fh, encoding="latin1")
    np.testing.assert_array_equal(raw["data"][0, 1024:2048].reshape(32, 32), x[0, 1])


# --------------------------------------------------------------------------- missing and corrupt files
def _assert_helpful(msg: str):
    for needle in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta", "download=True",
                   "cifar-10-python.tar.gz"):
        assert needle in msg, needle


def test_missing_directory(tmp_path):
    with pytest.raises(D.CIFARNotFoundError) as e:
        D.load_cifar10(tmp_path / "nowhere")
    _assert_helpful(str(e.value))
    assert isinstance(e.value, FileNotFoundError)


def test_missing_batch_file(tmp_path):
    root, *_ = hand_built(tmp_path)
    (root / D.LAYOUT_DIR / "data_batch_3").unlink()
    with pytest.raises(D.CIFARNotFoundError, match="data_batch_3") as e:
        D.load_cifar10(root)
    _assert_helpful(str(e.value))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_shape", "bad_labels", "no_labels",
                                    "not_a_dict", "code"])
def test_corrupt_batch_file(tmp_path, damage):
    root, *_ = hand_built(tmp_path)
    p = root / D.LAYOUT_DIR / "data_batch_2"
    raw = p.read_bytes()
    marker = tmp_path / "pwned"
    if damage == "truncate":
        p.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        p.write_bytes(os.urandom(500))
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "wrong_shape":
        p.write_bytes(pickle.dumps({"labels": [0, 1], "data": np.zeros((2, 1024), np.uint8)}, 2))
    elif damage == "bad_labels":
        p.write_bytes(pickle.dumps({"labels": [0, 12], "data": np.zeros((2, 3072), np.uint8)}, 2))
    elif damage == "no_labels":
        p.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8)}, 2))
    elif damage == "not_a_dict":
        p.write_bytes(pickle.dumps([1, 2, 3], 2))
    elif damage == "code":  # a pickle that would run a command if unpickled naively

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        p.write_bytes(pickle.dumps({"labels": [0], "data": Evil()}, 2))
    with pytest.raises(D.CIFARFormatError) as e:
        D.load_cifar10(root)
    assert "data_batch_2" in str(e.value)
    assert isinstance(e.value, ValueError)
    assert not marker.exists()
    if damage in ("truncate", "garbage", "empty", "code"):
        _assert_helpful(str(e.value))


def test_bad_source_and_download_combination(tmp_path):
    with pytest.raises(ValueError, match="source"):
        D.load_cifar10(tmp_path, source="hdf5")
    with pytest.raises(ValueError, match="download"):
        D.load_cifar10(tmp_path, source="pickle", download=True)


# --------------------------------------------------------------------------- the real subset
@has_real
def test_real_subset_loads_with_expected_counts():
    a = D.load_cifar10()
    assert a.x_train.shape == (5000, 3, 32, 32) and a.x_test.shape == (1000, 3, 32, 32)
    # README: the first 1,000 images of each official training batch, "roughly 500 per class"
    counts = np.bincount(a.y_train, minlength=10)
    assert counts.sum() == 5000 and counts.min() >= 400 and counts.max() <= 600
    assert a.classes[0] == "airplane" and a.classes[9] == "truck"
    assert a.source == "pickle" and not a.verified
    # natural images: channel means near the official CIFAR-10 statistics (±0.03)
    mean = a.x_train.reshape(5000, 3, -1).mean((0, 2)) / 255
    np.testing.assert_allclose(mean, D.MEAN, atol=0.03)


def test_default_dir_is_repo_relative_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    assert D.default_data_dir() == (D.repo_root() / ".." / "shared" / "data" / "cifar10-subset").resolve()
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path))
    assert D.default_data_dir() == tmp_path


# --------------------------------------------------------------------------- subsets
def test_balanced_subsets():
    labels = np.repeat(np.arange(10), [12, 7, 9, 10, 10, 10, 10, 10, 10, 10])
    idx = D.balanced_indices(labels, per_class=7, seed=3)
    assert np.bincount(labels[idx]).tolist() == [7] * 10
    assert np.array_equal(idx, D.balanced_indices(labels, per_class=7, seed=3))
    assert not np.array_equal(idx, D.balanced_indices(labels, per_class=7, seed=4))
    # size: as balanced as possible, the short class (7) gives its shortfall to the others
    idx = D.balanced_indices(labels, size=90, seed=0)
    c = np.bincount(labels[idx], minlength=10)
    assert c.sum() == 90 and c[1] == 7 and c.max() - c[[0, 2, 3, 4, 5, 6, 7, 8, 9]].min() <= 1
    assert len(np.unique(idx)) == 90
    with pytest.raises(ValueError, match=r"per_class.*1\.\.7"):
        D.balanced_indices(labels, per_class=8)
    with pytest.raises(ValueError, match="size"):
        D.balanced_indices(labels, size=0)


# --------------------------------------------------------------------------- augmentation
def test_augment_is_a_padded_crop_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = D.augment(x, g)
    xp = torch.nn.functional.pad(x, (4, 4, 4, 4))
    seen, flips = set(), 0
    for n in range(len(x)):
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                if torch.equal(out[n], (xp[n, :, dy:dy + 32, dx:dx + 32].flip(-1) if f else
                                        xp[n, :, dy:dy + 32, dx:dx + 32]))]
        assert len(hits) == 1, n
        seen.add(hits[0][:2])
        flips += hits[0][2]
    assert len(seen) > 20 and 5 < flips < 35  # offsets and flips vary across the batch
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(D.augment(x, g2), out)  # the generator alone decides


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    z = D.normalize(x)
    for c in range(3):
        assert z[0, c, 0, 0].item() == pytest.approx(-D.MEAN[c] / D.STD[c], rel=1e-6)
        assert z[1, c, 1, 1].item() == pytest.approx((1 - D.MEAN[c]) / D.STD[c], rel=1e-6)
