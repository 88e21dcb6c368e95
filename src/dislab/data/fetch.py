"""``dislab data fetch NAME``: download a data set's official files, resumably, and verify them.

Each file goes to ``DIR/NAME/<file>.part`` first; an interrupted download keeps the ``.part``
and the next ``fetch`` asks the server for the rest (HTTP ``Range``). Only a file whose size
and checksum match is renamed to its final name, so a final name always holds a verified file.
A wrong checksum deletes the ``.part`` (resuming cannot repair it). Offline, a dead link or a
server error is one :class:`FetchError` naming the URL and how to download by hand.

Checksums: none of the data sets' own pages publishes a checksum. The table uses the SHA-256
and size that TensorFlow Datasets records for the same URL (``tensorflow/datasets``,
``tensorflow_datasets/url_checksums/<name>.txt``: Shapes3D, smallNORB) and, where no SHA-256
is published anywhere we found (dSprites' ``.npz``, MPI3D, Cars3D), the MD5 that
``nmichlo/disent`` publishes (``disent/dataset/data/_groundtruth__*.py``; dSprites: a third-party
loader's ``Resource(md5=...)``). Each entry says where its checksum comes from, and the SHA-256
of every verified file is printed so that it can be recorded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dislab.data.base import DataError

__all__ = ["FetchError", "Source", "DataSource", "SOURCES", "fetch", "fetch_file",
           "describe_sources"]

_CHUNK = 1 << 20
_DISENT = ("MD5 published by nmichlo/disent (disent/dataset/data/_groundtruth__{}.py); no "
           "SHA-256 is published")
_TFDS = ("SHA-256 and size recorded by tensorflow/datasets "
         "(tensorflow_datasets/url_checksums/{}.txt)")


class FetchError(DataError):
    """A download failed (offline, dead link, server error) or its checksum is wrong."""


@dataclass(frozen=True)
class Source:
    """One file: its URL, name on disk, and what a good copy looks like.

    ``checksum``: ``("sha256" | "md5", hex digest)`` or ``None``; ``size``: bytes or ``None``
    (at least one of them should be given); ``origin``: where the checksum comes from.
    """

    url: str
    filename: str
    checksum: tuple[str, str] | None = None
    size: int | None = None
    origin: str = ""


@dataclass(frozen=True)
class DataSource:
    """The files of one data set, the page that documents them, and what to pass as
    ``--path`` once they are here (``{dir}`` = the data set's folder)."""

    files: tuple[Source, ...]
    page: str
    path_hint: str
    unpack: str | None = None  # "cars3d": extract data/cars/*.mat from the tarball
    notes: list[str] = field(default_factory=list)


def _mpi3d(mode: str, md5: str) -> DataSource:
    url = f"https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/{mode}.npz"
    return DataSource(
        files=(Source(url, f"{mode}.npz", ("md5", md5), None, _DISENT.format("mpi3d")),),
        page="https://github.com/rr-learning/disentanglement_dataset",
        path_hint="{dir}/" + f"{mode}.npz")


_NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_NORB_FILES = (  # (file, size, SHA-256) as recorded by TFDS
    ("smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz", 131_896_188,
     "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
    ("smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz", 348,
     "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
    ("smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz", 71_052,
     "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz", 130_799_817,
     "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz", 347,
     "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz", 10_428,
     "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"),
)

#: The data sets ``dislab data fetch`` knows (URLs: the official ones, as linked from each
#: data set's page and from disentanglement_lib's ``bin/dlib_download_data``).
SOURCES: dict[str, DataSource] = {
    "dsprites": DataSource(
        files=(Source(
            "https://github.com/deepmind/dsprites-dataset/raw/master/"
            "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
            ("md5", "7da33b31b13a06f4b04a70402ce90c2e"), None,
            "MD5 published by a third-party loader (Resource(md5=...)); no SHA-256 is "
            "published for the .npz (TFDS records the .hdf5 only)"),),
        page="https://github.com/deepmind/dsprites-dataset",
        path_hint="{dir}/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"),
    "shapes3d": DataSource(
        files=(Source(
            "https://storage.googleapis.com/3d-shapes/3dshapes.h5", "3dshapes.h5",
            ("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
            267_573_662, _TFDS.format("shapes3d")),),
        page="https://github.com/deepmind/3d-shapes",
        path_hint="{dir}/3dshapes.h5"),
    "mpi3d_toy": _mpi3d("mpi3d_toy", "55889cb7c7dfc655d6e0277beee88868"),
    "mpi3d_realistic": _mpi3d("mpi3d_realistic", "59a6225b88b635365f70c91b3e52f70f"),
    "mpi3d_real": _mpi3d("mpi3d_real", "0f33f609918fb5c97996692f91129802"),
    "smallnorb": DataSource(
        files=tuple(Source(_NORB + name, name, ("sha256", sha), size,
                           _TFDS.format("smallnorb")) for name, size, sha in _NORB_FILES),
        page="https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
        path_hint="{dir}"),
    "cars3d": DataSource(
        files=(Source("http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
                      "nips2015-analogy-data.tar.gz",
                      ("md5", "4e866a7919c1beedf53964e6f7a23686"), None,
                      _DISENT.format("cars3d")),),
        page="http://www.scottreed.info/ (Reed et al. 2015, Deep Visual Analogy-Making)",
        path_hint="{dir}/cars", unpack="cars3d"),
}


def describe_sources(sources: dict[str, DataSource] | None = None) -> str:
    """One block per data set: its files, URLs and checksums (``--help``'s epilog)."""
    lines = []
    for name, ds in (sources or SOURCES).items():
        lines.append(f"{name}  ({ds.page})")
        for f in ds.files:
            check = f"{f.checksum[0]} {f.checksum[1]}" if f.checksum else "size only"
            size = f", {f.size:,} bytes" if f.size else ""
            lines.append(f"    {f.url}\n      {check}{size}")
    return "\n".join(lines)


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _manual(src: Source, dest: Path) -> str:
    return (f"Download it by hand ({src.url}) to {dest}"
            + (f" and check its {src.checksum[0]} is {src.checksum[1]}" if src.checksum
               else "") + ", or re-run the same command later to resume.")


def _verify(path: Path, src: Source) -> str | None:
    """``None`` when ``path`` matches ``src``'s size and checksum, else what is wrong."""
    got = path.stat().st_size
    if src.size is not None and got != src.size:
        return f"it has {got:,} bytes, expected {src.size:,}"
    if src.checksum is not None:
        algorithm, want = src.checksum
        digest = _digest(path, algorithm)
        if digest != want.lower():
            return f"its {algorithm} is {digest}, expected {want}"
    return None


def fetch_file(src: Source, folder: str | os.PathLike[str], progress: bool = True,
               timeout: float = 30.0) -> Path:
    """Download ``src`` into ``folder`` (resuming ``<file>.part``), verify, rename; return
    the final path. An existing final file is verified and kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / src.filename
    part = folder / (src.filename + ".part")
    say = print if progress else (lambda *a, **k: None)
    if dest.exists():
        problem = _verify(dest, src)
        if problem is None:
            say(f"{dest}: already here and verified", file=sys.stderr)
            return dest
        raise FetchError(f"{dest} exists but {problem}. Delete it and run the command again "
                         f"to download {src.url}.")
    start = part.stat().st_size if part.exists() else 0
    if src.size is not None and start > src.size:
        part.unlink()
        start = 0
    headers = {"User-Agent": "dislab-data-fetch"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(src.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left to send: the .part is complete
            response = None
        else:
            raise FetchError(f"Cannot download {src.url}: HTTP {e.code} {e.reason}. "
                             + _manual(src, dest)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"Cannot reach {src.url} ({reason}; offline?). "
                         + _manual(src, dest)) from None
    if response is not None:
        with response:
            resumed = start > 0 and response.status == 206
            if start and not resumed:
                start = 0  # the server ignored Range: start over
            total = response.headers.get("Content-Length")
            total = int(total) + start if total is not None else src.size
            say(f"{src.url} -> {dest}" + (f" (resuming at {start:,} bytes)" if resumed
                                          else ""), file=sys.stderr)
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True,
                       disable=not progress, file=sys.stderr)
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while True:
                        block = response.read(_CHUNK)
                        if not block:
                            break
                        out.write(block)
                        bar.update(len(block))
            except (OSError, ValueError) as e:  # connection lost, IncompleteRead, timeout
                raise FetchError(
                    f"The download of {src.url} stopped at {part.stat().st_size:,} bytes "
                    f"({type(e).__name__}: {e}); the partial file {part} is kept. "
                    "Re-run the same command to resume. " + _manual(src, dest)) from None
            finally:
                bar.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise FetchError(f"The download of {src.url} ended early ({got:,} of {total:,} "
                         f"bytes); the partial file {part} is kept. Re-run the same command "
                         "to resume. " + _manual(src, dest))
    problem = _verify(part, src)
    if problem is not None:
        part.unlink()
        raise FetchError(f"The file downloaded from {src.url} is not the expected one: "
                         f"{problem}. It was deleted. The link may serve another version "
                         f"now; check {src.url} by hand or report it.")
    os.replace(part, dest)
    say(f"{dest}: verified (sha256 {_digest(dest, 'sha256')})", file=sys.stderr)
    return dest


def _unpack_cars3d(tarball: Path, folder: Path) -> Path:
    """Extract ``data/cars/*.mat`` from the Cars3D tarball into ``folder/cars``."""
    target = folder / "cars"
    if target.is_dir() and any(target.glob("*.mat")):
        return target
    tmp = folder / "cars.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = member.name
                parts = Path(name).parts
                if (member.isfile() and name.endswith(".mat") and len(parts) >= 2
                        and parts[-2] == "cars" and ".." not in parts):
                    with tar.extractfile(member) as src, open(tmp / parts[-1], "wb") as dst:
                        shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"Cannot unpack {tarball} ({e}); delete it and fetch again.") from None
    os.replace(tmp, target)
    return target


def fetch(name: str, directory: str | os.PathLike[str] = "data", progress: bool = True,
          sources: dict[str, DataSource] | None = None, timeout: float = 30.0) -> Path:
    """Download and verify every file of data set ``name`` into ``directory/name``; return
    what to pass as ``path=`` / ``--path``. ``sources`` replaces :data:`SOURCES` (tests)."""
    table = SOURCES if sources is None else sources
    if name not in table:
        raise FetchError(f"No download for {name!r}; `dislab data fetch` knows "
                         f"{', '.join(sorted(table))} (the others are rendered procedurally "
                         "or need a manual download, see docs/data.md).")
    ds = table[name]
    folder = Path(directory) / name
    paths = [fetch_file(src, folder, progress=progress, timeout=timeout) for src in ds.files]
    if ds.unpack == "cars3d":
        _unpack_cars3d(paths[0], folder)
    return Path(ds.path_hint.format(dir=str(folder)))


def _cmd_fetch(args: Any) -> int:
    path = fetch(args.name, args.dir, progress=not args.quiet)
    print(f"{args.name}: ready; use --data {args.name} --data-path {path} "
          f"(or dislab.data.load({args.name!r}, path={str(path)!r}))")
    return 0


def register(sub: Any) -> None:
    """Add ``fetch`` to ``dislab data``."""
    import argparse

    p = sub.add_parser(
        "fetch", help="download a data set's official files (resumable, verified)",
        description="Download the official files of NAME into DIR/NAME, resuming a partial "
        "download (DIR/NAME/FILE.part) and renaming it only once its size and checksum "
        "match. None of the data sets' own pages publishes a checksum: the SHA-256s are "
        "TensorFlow Datasets' records, the MD5s (no SHA-256 published) nmichlo/disent's "
        "(docs/data.md). Prints the --data-path to use. Data sets, URLs and checksums:",
        epilog=describe_sources(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(SOURCES), metavar="NAME",
                   help=f"one of {', '.join(sorted(SOURCES))}")
    p.add_argument("--dir", default="data", help="where to put NAME/ (default ./data)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fetch)
