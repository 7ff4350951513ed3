"""Download the official MNIST files, md5-verified, from a list of mirrors (urllib only).

For each file, the mirrors are tried in order; a mirror is skipped, and its failure
recorded, on an HTTP error, a failed connection or timeout, a body shorter than its
Content-Length (the connection closed early), or an md5 that differs from the expected one. The body is
written to a temporary file next to the destination (``.<name>.<random>.part``) and moved
into place with ``os.replace`` only after its md5 matched: no half-written or unverified
file is ever left under the real name, and the temporary file is removed whatever
happens (KeyboardInterrupt included). If every mirror fails, :class:`DownloadError`
lists each mirror's failure.

``MIRRORS`` and ``RESOURCES`` are torchvision's; tests pass their own (or replace these
module attributes, which ``MNIST(download=True)`` reads at call time).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

__all__ = ["MIRRORS", "RESOURCES", "DownloadError", "download_file", "download_mnist", "md5sum"]

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
RESOURCES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_CHUNK = 1 << 16
_USER_AGENT = "refcnn (python urllib)"


class DownloadError(OSError):
    """No mirror delivered a file with the expected md5."""


def md5sum(path: str | os.PathLike[str]) -> str:
    """The hex md5 of a file's bytes."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _MirrorFailed(Exception):
    pass


def _fetch(url: str, tmp: Path, md5: str, timeout: float, progress: bool, desc: str) -> None:
    """Stream ``url`` into ``tmp``; raise _MirrorFailed saying why it is not the file wanted."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None and length.isdigit() else None
            h, got = hashlib.md5(), 0
            with open(tmp, "wb") as out, tqdm(
                total=expected, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False
            ) as bar:  # fmt: skip
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise _MirrorFailed(f"HTTP error {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise _MirrorFailed(f"connection failed: {err.reason}") from err
    except http.client.IncompleteRead as err:
        raise _MirrorFailed(f"truncated body: {err}") from err
    except (http.client.HTTPException, OSError) as err:  # timeouts, resets, protocol errors
        raise _MirrorFailed(f"{type(err).__name__}: {err}") from err
    if expected is not None and got != expected:
        raise _MirrorFailed(f"truncated body: received {got} bytes, Content-Length {expected}")
    digest = h.hexdigest()
    if digest != md5:
        raise _MirrorFailed(f"checksum mismatch: md5 {digest}, expected {md5} ({got} bytes)")


def download_file(
    filename: str,
    root: str | os.PathLike[str],
    md5: str,
    mirrors: Sequence[str] = MIRRORS,
    *,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Fetch ``mirror + filename`` into ``root/filename`` from the first mirror that delivers
    the whole body with md5 ``md5``. Returns the path; raises DownloadError listing every
    mirror's failure. An existing file with the right md5 is kept as is (no download)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / filename
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    failures = []
    for mirror in mirrors:
        url = mirror + filename
        fd, name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=root)
        os.close(fd)
        tmp = Path(name)
        try:
            _fetch(url, tmp, md5, timeout, progress, filename)
            os.replace(tmp, dest)  # only a verified file ever gets the real name
            return dest
        except _MirrorFailed as err:
            failures.append(f"  {url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {filename} (md5 {md5}) into {root}; every mirror failed:\n" + "\n".join(failures)
    )


def download_mnist(
    root: str | os.PathLike[str],
    mirrors: Sequence[str] | None = None,
    resources: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
    progress: bool = True,
) -> list[Path]:
    """Make sure ``root`` holds the four official MNIST files (``resources``: name -> md5,
    default RESOURCES, from ``mirrors``, default MIRRORS). A file already there, as the
    verified ``.gz`` or extracted without the suffix, is not fetched again (torchvision's
    rule). Returns the paths of the files (gz, or extracted where that is what exists)."""
    mirrors = MIRRORS if mirrors is None else mirrors
    resources = RESOURCES if resources is None else resources
    out = []
    for filename, md5 in resources.items():
        extracted = Path(root) / filename.removesuffix(".gz")
        if filename.endswith(".gz") and extracted.is_file():
            out.append(extracted)
            continue
        out.append(download_file(filename, root, md5, mirrors, timeout=timeout, progress=progress))
    return out
