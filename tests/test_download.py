"""refcnn.data.download against a local HTTP server on 127.0.0.1 (port 0, one thread):
mirror fallback order, every failure kind, md5 verification, no partial files left behind.
Nothing here touches any other address."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from refcnn.data import MNIST, DownloadError, download, download_mnist, write_idx

PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: several read chunks
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Server:
    """Routes: path -> (status, body, declared Content-Length or None for the true one)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.log: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.log.append(self.path)
                route = owner.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                status, body, declared = route
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if declared is None else declared))
                self.end_headers()
                self.wfile.write(body)  # HTTP/1.0: the connection closes after this

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def serve(self, mirror: str, name: str, body: bytes, status: int = 200, declared: int | None = None) -> str:
        self.routes[f"/{mirror}/{name}"] = (status, body, declared)
        return f"{self.url}/{mirror}/"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=5)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A local port that is bound but not listening: connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/refused/"
    finally:
        sock.close()


def mirrors(server: Server, refused_url: str, name: str) -> dict[str, str]:
    corrupt = bytearray(PAYLOAD)
    corrupt[1000] ^= 1
    return {
        "refused": refused_url,
        "missing": f"{server.url}/missing/",  # no route: 404
        "error": server.serve("error", name, b"oops", status=500),
        "corrupt": server.serve("corrupt", name, bytes(corrupt)),
        "truncated": server.serve("truncated", name, PAYLOAD[:5000], declared=len(PAYLOAD)),
        "good": server.serve("good", name, PAYLOAD),
        "good2": server.serve("good2", name, PAYLOAD),
    }


def leftovers(root: Path, keep: str | None = None) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != keep)


def test_falls_back_through_every_failure_in_order(server, refused_url, tmp_path):
    m = mirrors(server, refused_url, "f.gz")
    order = [m["refused"], m["missing"], m["error"], m["corrupt"], m["truncated"], m["good"], m["good2"]]
    path = download.download_file("f.gz", tmp_path, MD5, order, timeout=5, progress=False)
    assert path == tmp_path / "f.gz" and path.read_bytes() == PAYLOAD
    assert server.log == [
        "/missing/f.gz",
        "/error/f.gz",
        "/corrupt/f.gz",
        "/truncated/f.gz",
        "/good/f.gz",
    ]  # good2 never asked
    assert leftovers(tmp_path, keep="f.gz") == []  # no .part file left


def test_all_mirrors_fail_lists_each_failure(server, refused_url, tmp_path):
    m = mirrors(server, refused_url, "f.gz")
    order = [m["corrupt"], m["refused"], m["truncated"], m["missing"], m["error"]]
    with pytest.raises(DownloadError) as info:
        download.download_file("f.gz", tmp_path / "sub", MD5, order, timeout=5, progress=False)
    lines = str(info.value).splitlines()
    assert lines[0] == f"could not download f.gz (md5 {MD5}) into {tmp_path / 'sub'}; every mirror failed:"
    bad = hashlib.md5(bytes(b ^ (i == 1000) for i, b in enumerate(PAYLOAD))).hexdigest()
    assert lines[1] == f"  {m['corrupt']}f.gz: checksum mismatch: md5 {bad}, expected {MD5} (76800 bytes)"
    assert lines[2].startswith(f"  {m['refused']}f.gz: connection failed: ") and "refused" in lines[2].lower()
    assert lines[3].startswith(f"  {m['truncated']}f.gz: truncated body") and "5000" in lines[3]
    assert lines[4] == f"  {m['missing']}f.gz: HTTP error 404 Not Found"
    assert lines[5] == f"  {m['error']}f.gz: HTTP error 500 Internal Server Error"
    assert len(lines) == 6
    assert isinstance(info.value, OSError)
    assert leftovers(tmp_path / "sub") == []  # neither the file nor a temporary one


def test_no_mirrors_is_an_error(tmp_path):
    with pytest.raises(DownloadError, match=r"every mirror failed:$"):
        download.download_file("f.gz", tmp_path, MD5, [], progress=False)


def test_verified_existing_file_is_not_fetched_again(server, tmp_path):
    (tmp_path / "f.gz").write_bytes(PAYLOAD)
    download.download_file("f.gz", tmp_path, MD5, [server.serve("good", "f.gz", PAYLOAD)], progress=False)
    assert server.log == []


def test_bad_existing_file_is_replaced(server, tmp_path):
    (tmp_path / "f.gz").write_bytes(b"stale")
    download.download_file("f.gz", tmp_path, MD5, [server.serve("good", "f.gz", PAYLOAD)], progress=False)
    assert (tmp_path / "f.gz").read_bytes() == PAYLOAD and server.log == ["/good/f.gz"]


def test_failed_download_keeps_nothing_under_the_real_name(server, tmp_path):
    # a corrupt body is streamed to a temporary file, never to f.gz itself
    bad = server.serve("corrupt", "f.gz", PAYLOAD[::-1])
    with pytest.raises(DownloadError):
        download.download_file("f.gz", tmp_path, MD5, [bad], progress=False)
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_mid_download_leaves_no_partial_file(server, tmp_path, monkeypatch):
    class InterruptingBar:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> InterruptingBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt  # after the first chunk is on disk

    monkeypatch.setattr(download, "tqdm", InterruptingBar)
    url = server.serve("good", "f.gz", PAYLOAD)
    with pytest.raises(KeyboardInterrupt):
        download.download_file("f.gz", tmp_path, MD5, [url], progress=False)
    assert server.log == ["/good/f.gz"]
    assert leftovers(tmp_path) == []


# ---- download_mnist and MNIST(download=True) ----------------------------------------------------
def fake_mnist(tmp_path: Path) -> dict[str, bytes]:
    """Four small valid IDX gz files under the official names."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([0, 1, 2, 3, 4, 5], np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([9, 8, 7], np.uint8),
    }
    src = tmp_path / "src"
    src.mkdir()
    return {name: write_idx(src / name, a).read_bytes() for name, a in arrays.items()}


def test_mnist_download_true_uses_injected_mirrors(server, refused_url, tmp_path, monkeypatch):
    blobs = fake_mnist(tmp_path)
    for name, blob in blobs.items():
        server.serve("good", name, blob)
    monkeypatch.setattr(download, "MIRRORS", (refused_url, f"{server.url}/good/"))
    monkeypatch.setattr(download, "RESOURCES", {name: hashlib.md5(b).hexdigest() for name, b in blobs.items()})
    root = tmp_path / "data"
    ds = MNIST(root, train=False, download=True)
    assert len(ds) == 3 and ds.targets.tolist() == [9, 8, 7]
    assert sorted(server.log) == sorted(f"/good/{n}" for n in blobs)
    assert leftovers(root) == sorted(blobs)
    assert len(MNIST(root, train=True, download=True)) == 6
    assert len(server.log) == 4  # already there and verified: nothing fetched again


def test_download_mnist_skips_extracted_files(server, tmp_path):
    blobs = fake_mnist(tmp_path)
    resources = {name: hashlib.md5(b).hexdigest() for name, b in blobs.items()}
    for name, blob in blobs.items():
        server.serve("good", name, blob)
    root = tmp_path / "data"
    root.mkdir()
    (root / "t10k-labels-idx1-ubyte").write_bytes(b"extracted by the user")
    paths = download_mnist(root, [f"{server.url}/good/"], resources, timeout=5, progress=False)
    assert root / "t10k-labels-idx1-ubyte" in paths and len(paths) == 4
    assert "/good/t10k-labels-idx1-ubyte.gz" not in server.log and len(server.log) == 3


def test_default_mirrors_and_md5s_are_torchvisions():
    assert download.MIRRORS == ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    assert download.RESOURCES == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real MNIST not found at {SHARED} (../shared/data/mnist)")
@pytest.mark.parametrize(
    "name", ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
)
def test_official_md5s_match_the_shared_originals(name):
    assert download.md5sum(SHARED / name) == download.RESOURCES[name]


# ---- python -m refcnn train --download, in a subprocess, from the local server ------------------------
ROOT = Path(__file__).resolve().parents[1]  # the subprocess's cwd: it imports this refcnn


def train_with_mirrors(mirrors: list[str], resources: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m refcnn train ARGV`` with the downloader's mirrors and checksums replaced first."""
    code = (
        "import sys; import refcnn.data.download as d; "
        f"d.MIRRORS = {tuple(mirrors)!r}; d.RESOURCES = {resources!r}; "
        "from refcnn.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, "train", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_train_download_fetches_checks_and_trains(server, refused_url, tmp_path):
    blobs = fake_mnist(tmp_path)
    for name, blob in blobs.items():
        server.serve("good", name, blob)
    resources = {name: hashlib.md5(b).hexdigest() for name, b in blobs.items()}
    root = tmp_path / "data"
    result = train_with_mirrors([refused_url, f"{server.url}/good/"], resources, "--data", str(root), "--download",
                                "--model", "simplecnn", "--epochs", "1", "--batch-size", "2", "--no-progress",
                                "--checkpoint", str(tmp_path / "m.safetensors"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"on 6 images from {root}, testing on 3" in result.stdout
    assert sorted(server.log) == sorted(f"/good/{n}" for n in blobs)
    assert leftovers(root) == sorted(blobs)  # the four verified files, no .part file
    assert (tmp_path / "m.safetensors").is_file()


def test_train_download_failure_is_one_line(server, refused_url, tmp_path):
    blobs = fake_mnist(tmp_path)
    corrupt = {name: hashlib.md5(b + b"x").hexdigest() for name, b in blobs.items()}  # no file matches
    for name, blob in blobs.items():
        server.serve("good", name, blob)
    root = tmp_path / "data"
    result = train_with_mirrors([refused_url, f"{server.url}/good/"], corrupt, "--data", str(root), "--download",
                                "--checkpoint", str(tmp_path / "m.safetensors"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"train: could not download MNIST into {root}: {refused_url}")
    assert "connection failed" in lines[0] and "checksum mismatch" in lines[0]
    assert leftovers(root) == []  # nothing unverified left behind
