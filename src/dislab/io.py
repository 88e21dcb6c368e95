"""Atomic file writes and dislab's one rule for JSON numbers.

Every file dislab writes goes through a temporary file in the same folder and ``os.replace``,
so a reader never sees half a file and a crash mid-write leaves the previous version in place
(the temporary file is removed on failure).

JSON has no NaN or infinity. dislab writes a non-finite float as ``null`` everywhere
(``status.json``, ``metrics.json``, ``result.json``, caches), so every file is valid JSON for
any reader. Readers here also accept the older forms, the bare ``NaN``/``Infinity`` tokens
that Python's ``json`` writes by default and the strings ``"nan"``/``"inf"``/``"-inf"``;
:func:`as_float` turns any of them (and ``null``) back into a float.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "as_float",
    "dumps_json",
    "jsonable",
    "read_json",
    "write_json",
]

_NONFINITE_STRINGS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf,
                      "infinity": math.inf, "-infinity": -math.inf}


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on normal exit it replaces ``path``.

    For writers that want a file name (``np.savez``, ``DataFrame.to_parquet``, h5py,
    safetensors). On an exception the temporary file is deleted and ``path`` is untouched.
    ``fsync``: flush the file to disk before the rename (for records that must survive a
    power cut, e.g. checkpoints). The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, fsync: bool = False,
                      encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (``encoding`` default UTF-8); returns ``path``."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as Python numbers/lists, mapping keys as strings and
    every non-finite float as ``None`` (the one NaN rule). Other objects are left as they are."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist) and hasattr(obj, "dtype"):
        return jsonable(obj.tolist())  # numpy scalar or array, torch tensor
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def dumps_json(obj: Any, indent: int | None = 2, sort_keys: bool = False,
               default: Any = None) -> str:
    """``obj`` as JSON text under the NaN rule (non-finite floats as ``null``), newline-ended.

    ``default`` is passed to :func:`json.dumps` for objects JSON cannot hold (e.g. ``str``).
    """
    return json.dumps(jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False,
                      default=default) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2,
               sort_keys: bool = False, default: Any = None, fsync: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically, non-finite floats as ``null``."""
    return atomic_write_text(path, dumps_json(obj, indent, sort_keys, default), fsync=fsync)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path`` (bare ``NaN``/``Infinity`` accepted), or ``None`` when the file
    is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def as_float(value: Any) -> float:
    """A stored number as a float: ``None`` (``null``) and the old strings ``"nan"``,
    ``"inf"``, ``"-inf"`` become NaN / ±inf; other values go through ``float``."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _NONFINITE_STRINGS:
            return _NONFINITE_STRINGS[key]
    return float(value)
