"""Result files: arrays plus their configuration, written atomically, read back as objects.

A result file is a single ``.npz`` archive. Its arrays are stored under their own names and the
configuration (a JSON-serialisable dict: parameters, seed, problem description, provenance) under the
reserved key ``__config__``. Writes go to a temporary file in the same directory which is then renamed
over the target, so an interrupted run never leaves a truncated file behind.

:class:`Result` is the one way a study's outcome is saved and loaded: a dataclass whose fields are
arrays, JSON values, a :class:`~lrdecay.theory.problem.Problem` or another ``Result`` is written by
``save(path)`` and read back, as the same class, by ``Cls.load(path)``. Every saved result carries a
``provenance`` block (package version, git commit, library versions, creation time).
"""
from __future__ import annotations

import dataclasses
import datetime
import errno
import io as _io
import json
import math
import os
import platform
import subprocess
import tempfile
import threading
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

CONFIG_KEY = "__config__"
FIELDS_KEY = "__fields__"


class ResultFileError(ValueError):
    """A result file is missing, damaged or of the wrong kind (the message names the file)."""


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------

def to_jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: mappings, sequences, numpy arrays and scalars, paths."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces, floats by ``repr``): equal values, equal text."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_to_dict(cfg) -> dict:
    """A configuration dataclass as a plain-JSON dict (tuples become lists)."""
    return {f.name: to_jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from_dict(cls, d: Mapping[str, Any]):
    """The configuration dataclass ``cls`` from ``d`` (lists become tuples where the default is a
    tuple); unknown keys raise ``ValueError`` naming the known ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys {sorted(fields)}")
    values = {}
    for k, v in d.items():
        default = fields[k].default
        values[k] = tuple(v) if isinstance(v, list) and isinstance(default, tuple) else v
    return cls(**values)


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, fsync, rename,
    fsync of the directory. The file gets the usual permissions (``0o666`` less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def clean_temporary_files(directory: str | os.PathLike) -> list[Path]:
    """Remove leftovers ``.<name>.*.tmp`` of interrupted atomic writes (:func:`atomic_write_bytes` killed between
    creating its temporary file and renaming it) anywhere under ``directory``; returns what was removed.
    :class:`DirectoryLock` calls it when it takes a directory, when no other writer can be mid-write."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in directory.rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def prepare_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``path`` (and its parents) and check that files can be written there, before any long
    computation; errors name ``option`` and the directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option}: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{option}: cannot write to {path} ({exc.strerror or exc})") from None
    return path


LOCK_FILE = ".lock"
_HELD: dict[str, list] = {}     # real path of a directory this process has locked -> [open lock file, depth]
_HELD_GUARD = threading.Lock()  # threads of one process share its locks


class DirectoryLockedError(ValueError):
    """Another process holds the directory's lock (a ``ValueError``: its one-line message names the option, the
    directory and the holder's pid, and what to do)."""


class DirectoryLock:
    """The lock of a run or output directory: one writer at a time, no leftovers of interrupted writes.

    An exclusive, non-blocking ``fcntl.flock`` on ``<directory>/.lock`` (the directory is created if needed).
    A second process asking for it fails at once with :class:`DirectoryLockedError`, before any computation;
    the operating system releases it when the holder exits, however it exits. Within one process the lock is
    re-entrant (nested stages share it). Whoever takes it first removes the temporary files of interrupted
    atomic writes (:func:`clean_temporary_files`). ``option`` names the directory in messages (``"--out"``
    for the command line, ``"out"`` for the empirics' run directories).
    """

    def __init__(self, directory: str | os.PathLike, option: str = "--out"):
        self.directory, self.option = Path(directory), option
        self._keys: list[str] = []

    def __enter__(self) -> "DirectoryLock":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"{self.option}: {self.directory} exists and is not a directory") from None
        key = os.path.realpath(self.directory)
        with _HELD_GUARD:
            if key not in _HELD:
                _HELD[key] = [self._acquire(), 0]
                try:
                    clean_temporary_files(self.directory)
                except BaseException:
                    self._release(key)
                    raise
            _HELD[key][1] += 1
        self._keys.append(key)
        return self

    def __exit__(self, *exc) -> None:
        key = self._keys.pop()
        with _HELD_GUARD:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                self._release(key)

    def _acquire(self):
        import fcntl

        fh = open(self.directory / LOCK_FILE, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.seek(0)
            text = fh.read().strip()
            fh.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = f"pid {text}" if text.isdigit() else text or "another process"
            raise DirectoryLockedError(f"{self.option}: {self.directory} is in use by {holder}; wait for it to "
                                       "finish or choose another directory") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        return fh

    @staticmethod
    def _release(key: str) -> None:
        import fcntl

        fh = _HELD.pop(key)[0]
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def is_locked_here(directory: str | os.PathLike) -> bool:
    """Whether this process holds the lock of ``directory``."""
    return os.path.realpath(directory) in _HELD


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or damaged file raises an error that names it."""
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: not valid JSON ({exc}); delete it or recompute") from None


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return commit + ("+dirty" if dirty else "")


@lru_cache(maxsize=1)
def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("lrdecay")
    except Exception:  # not installed (e.g. run from a source tree on PYTHONPATH)
        return "unknown"


#: CPU features that change which BLAS / oneDNN kernels run (and so the rounding of a computation)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """The CPU: model name, vendor family/model/stepping (from /proc/cpuinfo on Linux, else the platform's
    processor string) and the SIMD flags of :data:`SIMD_FLAGS` it has."""
    fields: dict = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break                              # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or platform.processor() or platform.machine()
    ident = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")) if "cpu family" in fields else None
    out = {"model": model, "flags": [f for f in SIMD_FLAGS if f in flags]}
    if ident:
        out["family/model/stepping"] = ident
    return out


def _numpy_blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
    except (TypeError, ValueError, AttributeError):   # numpy < 1.25
        return "unknown"
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    simd = cfg.get("SIMD Extensions", {})
    text = " ".join(str(x) for x in (blas.get("name"), blas.get("version")) if x) or "unknown"
    conf = blas.get("openblas configuration")
    if conf:
        text += f" ({conf.strip()})"
    if simd.get("found"):
        text += "; numpy SIMD: " + " ".join(simd["found"])
    return text


def _threadpools() -> list | None:
    """threadpoolctl's summary of the loaded BLAS / OpenMP libraries (None when it is not installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [" ".join(str(i.get(k)) for k in ("internal_api", "version", "architecture", "threading_layer")
                     if i.get(k)) + f", {i.get('num_threads')} threads" for i in threadpool_info()]


def torch_build() -> str | None:
    """The lines of ``torch.__config__.show()`` that say which CPU kernels run (CPU capability, BLAS, LAPACK,
    oneDNN/MKL-DNN, OpenMP), joined; None when torch is not imported."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        text = torch.__config__.show()
    except Exception:   # an unusual build: say so rather than fail a save
        return "unknown"
    keep = ("CPU capability", "BLAS_INFO", "LAPACK_INFO", "oneDNN", "MKL-DNN", "USE_MKLDNN", "OpenMP",
            "Math Kernel Library")
    lines = [" ".join(ln.replace("-", " ", 1).split()) if ln.lstrip().startswith("-") else " ".join(ln.split())
             for ln in text.splitlines() if any(k in ln for k in keep)]
    parts = []
    for ln in lines:
        for item in ln.split(", ") if ln.startswith("Build settings") else [ln]:
            if any(k in item for k in keep):
                parts.append(item.removeprefix("Build settings: "))
    return "; ".join(dict.fromkeys(parts)) or "unknown"


@lru_cache(maxsize=1)
def _static_compute() -> dict:
    out = {"cpu": cpu_info(), "numpy_blas": _numpy_blas()}
    pools = _threadpools()
    if pools is not None:
        out["threadpools"] = pools
    return out


def compute_environment() -> dict:
    """What decides the rounding of a run, so that a reader can tell which runs are comparable: the CPU model
    and its SIMD flags, numpy's BLAS build (and the libraries threadpoolctl sees, where installed) and, when
    torch is imported, its CPU build (capability, BLAS, oneDNN). Runs agree bit for bit only on the same
    CPU kind, BLAS build and thread count."""
    out = dict(_static_compute())
    tb = torch_build()
    if tb is not None:
        out["torch_build"] = tb
    return out


def provenance(wall_time: float | None = None) -> dict:
    """Where a result came from: package version, git commit, Python, numpy, scipy (and torch when
    it is already imported), the machine, the compute environment (:func:`compute_environment`), the
    creation time and the wall time if given."""
    import sys

    out = {"package_version": _package_version(), "git_commit": _git_commit(),
           "python": platform.python_version(), "numpy": np.__version__,
           "machine": f"{platform.machine()} {platform.system()} {os.cpu_count()} cpus",
           "compute": compute_environment(),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if "scipy" in sys.modules:
        out["scipy"] = sys.modules["scipy"].__version__
    if "torch" in sys.modules:
        out["torch"] = getattr(sys.modules["torch"], "__version__", "unknown")
    if wall_time is not None:
        out["wall_time"] = float(wall_time)
    return out


# --------------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------------

def save_result(path: str | os.PathLike, arrays: Mapping[str, Any], config: Mapping[str, Any]) -> Path:
    """Save ``arrays`` (name -> array-like) and ``config`` (JSON-serialisable) to one ``.npz`` file.

    The write is atomic. ``config`` should hold everything needed to reproduce the arrays: the
    parameters, the seed and the problem instance. A ``provenance`` entry is added unless present.
    """
    if CONFIG_KEY in arrays:
        raise ValueError(f"arrays: the name {CONFIG_KEY!r} is reserved for the configuration")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path: result files end in '.npz', got {str(path)!r}")
    cfg = dict(config)
    cfg.setdefault("provenance", provenance())
    buf = _io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[CONFIG_KEY] = np.array(json.dumps(to_jsonable(cfg), sort_keys=True))
    np.savez_compressed(buf, **payload)
    return atomic_write_bytes(path, buf.getvalue())


def load_result(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`save_result`; returns ``(arrays, config)``. A missing file raises
    ``FileNotFoundError``, a damaged one :class:`ResultFileError`; both name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"result file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != CONFIG_KEY}
            config = json.loads(str(data[CONFIG_KEY])) if CONFIG_KEY in data.files else {}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ResultFileError(f"{path}: damaged result file ({type(exc).__name__}: {exc}); delete it or "
                              "recompute") from None
    return arrays, config


_RECORDS: dict[str, type] = {}


def record_type(cls):
    """Register a class that a :class:`Result` field may hold and that saves as arrays plus a JSON
    configuration: it has ``arrays(prefix) -> dict``, ``config() -> dict`` and the classmethod
    ``from_arrays(arrays, config, prefix)`` (e.g. :class:`~lrdecay.theory.problem.Problem`)."""
    _RECORDS[cls.__name__] = cls
    return cls


class Result:
    """Mixin for dataclasses saved as one result file and loaded back as the same class.

    Fields holding numpy arrays are stored as arrays; a registered record (:func:`record_type`, e.g. a
    :class:`~lrdecay.theory.problem.Problem`) as its arrays (prefixed by the field name) and its configuration;
    another ``Result`` likewise, recursively; a
    ``dict`` whose values are all arrays as prefixed arrays; everything else as JSON in the
    configuration. ``KIND`` names the class in the file, so that ``load`` refuses a file of another
    kind. Subclasses may override ``_extra_config`` to store derived numbers for readers of the file
    (they are not read back).
    """

    KIND: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("KIND"):
            Result._registry[cls.KIND] = cls
        if "__repr__" not in cls.__dict__:      # set before @dataclass runs, so it keeps this one
            cls.__repr__ = Result._compact_repr

    def _compact_repr(self) -> str:
        """``Kind(field=summary, ...)``: arrays by shape, dicts by their keys, long values cut."""
        def short(v):
            if isinstance(v, np.ndarray):
                return f"array{v.shape}"
            if isinstance(v, dict):
                keys = list(v)
                return "{" + ", ".join(map(str, keys[:6])) + (", …" if len(keys) > 6 else "") + "}"
            if isinstance(v, (list, tuple)) and len(v) > 6:
                return f"[{len(v)} items]"
            if isinstance(v, Result):
                return type(v).__name__ + "(…)"
            text = repr(v)
            return text if len(text) <= 60 else text[:57] + "…"
        fields = ", ".join(f"{f.name}={short(getattr(self, f.name))}" for f in dataclasses.fields(self) if f.repr)
        return f"{type(self).__name__}({fields})"

    # ---- flattening ----------------------------------------------------------------------------
    def _flatten(self, prefix: str = "") -> tuple[dict, dict, dict]:
        arrays, config, kinds = {}, {}, {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            v = getattr(self, f.name)
            key = prefix + f.name
            if isinstance(v, np.ndarray):
                arrays[key] = v.astype("U") if v.dtype.kind == "O" else v
                kinds[f.name] = "array"
            elif type(v).__name__ in _RECORDS and isinstance(v, _RECORDS[type(v).__name__]):
                arrays.update(v.arrays(prefix=key + "__"))
                config[f.name] = v.config()
                kinds[f.name] = "record:" + type(v).__name__
            elif isinstance(v, Result):
                a, c, k = v._flatten(key + "__")
                arrays.update(a)
                config[f.name] = {"kind": v.KIND, "config": c, "fields": k}
                kinds[f.name] = "result"
            elif isinstance(v, dict) and v and all(isinstance(x, np.ndarray) for x in v.values()):
                for name, x in v.items():
                    arrays[f"{key}__{name}"] = x
                kinds[f.name] = "arrays"
                config[f.name] = sorted(v)
            else:
                config[f.name] = to_jsonable(v)
                kinds[f.name] = "json"
        return arrays, config, kinds

    @classmethod
    def _unflatten(cls, arrays: dict, config: dict, kinds: dict, prefix: str = ""):
        values = {}
        for name, kind in kinds.items():
            key = prefix + name
            if kind == "array":
                values[name] = arrays[key]
            elif kind.startswith("record:"):
                values[name] = _RECORDS[kind[len("record:"):]].from_arrays(arrays, config[name], prefix=key + "__")
            elif kind == "result":
                sub = config[name]
                sub_cls = Result._registry.get(sub["kind"])
                if sub_cls is None:
                    raise ResultFileError(f"unknown nested result kind {sub['kind']!r}")
                values[name] = sub_cls._unflatten(arrays, sub["config"], sub["fields"], key + "__")
            elif kind == "arrays":
                values[name] = {n: arrays[f"{key}__{n}"] for n in config[name]}
            else:
                values[name] = config[name]
        return cls(**values)

    # ---- public --------------------------------------------------------------------------------
    def _extra_config(self) -> dict:
        return {}

    def save(self, path, *, wall_time: float | None = None) -> Path:
        """Write this result (arrays, configuration, provenance) to ``path`` (``.npz``), atomically."""
        arrays, config, kinds = self._flatten()
        wt = wall_time if wall_time is not None else getattr(self, "wall_time", None)
        meta = {"kind": self.KIND, FIELDS_KEY: kinds, "fields": config, "derived": self._extra_config(),
                "provenance": provenance(wt if isinstance(wt, (int, float)) and math.isfinite(wt) else None)}
        return save_result(path, arrays, meta)

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` for this class; errors name the file."""
        arrays, cfg = load_result(path)
        if cfg.get("kind") != cls.KIND or FIELDS_KEY not in cfg:
            raise ResultFileError(f"{path}: not a saved {cls.__name__} (kind = {cfg.get('kind')!r})")
        try:
            obj = cls._unflatten(arrays, cfg["fields"], cfg[FIELDS_KEY])
        except (KeyError, TypeError) as exc:
            raise ResultFileError(f"{path}: incomplete {cls.__name__} file (missing {exc})") from None
        object.__setattr__(obj, "_provenance", cfg.get("provenance", {}))
        return obj

    @property
    def provenance(self) -> dict:
        """The provenance block of the file this result was loaded from ({} for a fresh result)."""
        return getattr(self, "_provenance", {})
