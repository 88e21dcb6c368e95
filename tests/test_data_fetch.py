"""`dislab data fetch` against a local HTTP server on 127.0.0.1: a good file, one whose
connection drops half-way (then resumed with a Range request), a wrong checksum, a 404, no
server at all; a Cars3D-like tarball is unpacked."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dislab.cli import main
from dislab.data import fetch as F

PAYLOAD = os.urandom(300_000)  # a few 64 KiB chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    ranges: list[tuple[str, str | None]] = []
    drop_first: set[str] = set()

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        name = self.path.lstrip("/")
        self.ranges.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        data = self.files[name]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.drop_first:  # send part of it, then drop the connection
            self.drop_first.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"good.bin": PAYLOAD, "trunc.bin": PAYLOAD,
                      "bad.bin": PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1])}
    _Handler.ranges = []
    _Handler.drop_first = {"trunc.bin"}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _table(url: str, path: str, sha: str = SHA, size: int | None = len(PAYLOAD),
           algorithm: str = "sha256") -> dict[str, F.DataSource]:
    src = F.Source(f"{url}/{path}", "file.bin", (algorithm, sha), size, "test")
    return {"testset": F.DataSource(files=(src,), page="test", path_hint="{dir}/file.bin")}


def test_good_file_is_verified_and_kept(server: str, tmp_path: Path) -> None:
    out = F.fetch("testset", tmp_path, progress=False, sources=_table(server, "good.bin"))
    assert out == tmp_path / "testset" / "file.bin"
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "testset" / "file.bin.part").exists()
    # again: verified in place, nothing downloaded
    n = len(_Handler.ranges)
    F.fetch("testset", tmp_path, progress=False, sources=_table(server, "good.bin"))
    assert len(_Handler.ranges) == n


def test_md5_checksums_work_too(server: str, tmp_path: Path) -> None:
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    table = _table(server, "good.bin", sha=md5, size=None, algorithm="md5")
    assert F.fetch("testset", tmp_path, progress=False, sources=table).read_bytes() == PAYLOAD


def test_dropped_connection_keeps_part_and_resumes_with_range(server: str,
                                                              tmp_path: Path) -> None:
    table = _table(server, "trunc.bin")
    final = tmp_path / "testset" / "file.bin"
    part = tmp_path / "testset" / "file.bin.part"
    with pytest.raises(F.FetchError, match="Re-run the same command to resume") as err:
        F.fetch("testset", tmp_path, progress=False, sources=table)
    assert f"{server}/trunc.bin" in str(err.value)
    assert not final.exists()  # nothing half-written under the final name
    got = part.stat().st_size
    assert 0 < got < len(PAYLOAD) and part.read_bytes() == PAYLOAD[:got]
    F.fetch("testset", tmp_path, progress=False, sources=table)
    assert ("trunc.bin", f"bytes={got}-") in _Handler.ranges  # asked only for the rest
    assert final.read_bytes() == PAYLOAD and not part.exists()


def test_wrong_checksum_is_deleted_and_named(server: str, tmp_path: Path) -> None:
    with pytest.raises(F.FetchError, match="expected " + SHA) as err:
        F.fetch("testset", tmp_path, progress=False, sources=_table(server, "bad.bin"))
    assert f"{server}/bad.bin" in str(err.value)
    assert list((tmp_path / "testset").iterdir()) == []  # no final file, no .part


def test_wrong_size_is_refused_before_hashing(server: str, tmp_path: Path) -> None:
    with pytest.raises(F.FetchError, match="expected 299,999"):
        F.fetch("testset", tmp_path, progress=False,
                sources=_table(server, "good.bin", size=len(PAYLOAD) - 1))
    assert not (tmp_path / "testset" / "file.bin").exists()


def test_404_and_offline_are_one_clear_error(server: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(F.FetchError, match="HTTP 404") as err:
        F.fetch("testset", tmp_path, progress=False, sources=_table(server, "missing.bin"))
    assert f"{server}/missing.bin" in str(err.value) and "by hand" in str(err.value)
    # no server listening: the CLI prints one line naming the URL, exit status 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(F, "SOURCES", _table(dead, "good.bin"))
    code = main(["data", "fetch", "testset", "--dir", str(tmp_path / "x"), "--quiet"])
    err_text = capsys.readouterr().err
    assert code == 2 and f"{dead}/good.bin" in err_text and "Traceback" not in err_text
    assert not (tmp_path / "x" / "testset" / "file.bin").exists()


def test_cars3d_tarball_is_unpacked(server: str, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("data/cars/car_001_mesh.mat", "data/cars/car_002_mesh.mat",
                     "data/other/x.mat", "data/cars/readme.txt"):
            info = tarfile.TarInfo(name)
            content = name.encode()
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    blob = buf.getvalue()
    _Handler.files["cars.tar.gz"] = blob
    src = F.Source(f"{server}/cars.tar.gz", "cars.tar.gz",
                   ("sha256", hashlib.sha256(blob).hexdigest()), len(blob))
    table = {"cars3d": F.DataSource(files=(src,), page="t", path_hint="{dir}/cars",
                                    unpack="cars3d")}
    out = F.fetch("cars3d", tmp_path, progress=False, sources=table)
    assert out == tmp_path / "cars3d" / "cars"
    assert sorted(p.name for p in out.iterdir()) == ["car_001_mesh.mat", "car_002_mesh.mat"]
    assert (out / "car_001_mesh.mat").read_bytes() == b"data/cars/car_001_mesh.mat"


def test_help_lists_data_sets_and_urls(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "fetch", "--help"])
    text = capsys.readouterr().out
    for name, ds in F.SOURCES.items():
        assert name in text
        for src in ds.files:
            assert src.url in text and src.checksum[1] in text


def test_table_entries_are_well_formed() -> None:
    for ds in F.SOURCES.values():
        for src in ds.files:
            assert src.checksum is not None and src.origin
            algorithm, digest = src.checksum
            assert len(digest) == {"sha256": 64, "md5": 32}[algorithm]
            int(digest, 16)
            assert src.url.startswith(("https://", "http://"))
