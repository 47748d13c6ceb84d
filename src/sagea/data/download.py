"""Download, verify and extract raw dataset archives.

``fetch`` streams a URL to ``<dest>.part`` with a progress bar, retries with exponential backoff,
resumes a partial ``.part`` with an HTTP Range request, verifies the checksum and only then
renames the file to ``dest``. A file already at ``dest`` is used without any network access.
``extract`` unpacks zip / tar.gz archives into a temporary folder renamed into place at the end,
so a truncated or damaged archive never leaves a half-extracted folder.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagea.data.raw import DataError
from sagea.io import current_umask, remove_stale_temporaries
from sagea.runtime import progress

log = logging.getLogger(__name__)

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Remote:
    """Where a source's raw archive lives. ``md5_url``: a published md5 file (GroupLens)."""

    url: str
    sha256: str | None = None
    md5_url: str | None = None


def registry(source: str, release: str | None = None) -> Remote:
    """The download location of a source (docs/method.md §1 hosts). GroupLens publishes an md5
    next to each archive (``<url>.md5``), checked when reachable; no sha256 is published."""
    if source == "movielens":
        release = release or "ml-32m"
        url = f"{GROUPLENS}/{release}.zip"
        return Remote(url, md5_url=f"{url}.md5")
    if source == "lastfm1k":
        return Remote("http://mtg.upf.edu/static/datasets/last.fm/lastfm-dataset-1K.tar.gz")
    if source == "echonest":
        return Remote("http://labrosa.ee.columbia.edu/~dpwe/tmp/train_triplets.txt.zip")
    raise DataError(f"source {source!r} has nothing to download; give datasets.<name>.path instead")


class DownloadError(DataError):
    pass


class ChecksumError(DataError):
    pass


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None = None, md5: str | None = None, url: str | None = None) -> None:
    """Raise :class:`ChecksumError` when ``path`` does not match the expected digest(s)."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.strip().lower():
                raise ChecksumError(
                    f"{algorithm} mismatch for {path}{f' (from {url})' if url else ''}: expected {expected}, "
                    f"got {actual}. The file is damaged or a different version; delete it and rerun, or fix "
                    "datasets.<name>.sha256."
                )


def _total_from(response: http.client.HTTPResponse, offset: int) -> int | None:
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # bytes a-b/total
        total = content_range.rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def fetch(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` (see the module docstring); returns ``dest``."""
    dest = Path(dest)
    if dest.exists():
        log.info("using %s (already present; no download)", dest)
        verify(dest, sha256, md5, url)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff * 2 ** (attempt - 1)
            log.warning(
                "download of %s failed (%s); retry %d/%d in %.1fs", url, last_error, attempt, retries, wait
            )
            time.sleep(wait)
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "sagea-workflow"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if offset and response.status != 206:  # server ignored the range: start over
                    offset = 0
                total = _total_from(response, offset)
                mode = "ab" if offset else "wb"
                with (
                    open(part, mode) as fh,
                    progress(total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name) as bar,
                ):
                    while block := response.read(chunk_size):
                        fh.write(block)
                        bar.update(len(block))
                size = part.stat().st_size
                if total is not None and size < total:
                    raise http.client.IncompleteRead(b"", total - size)
            break
        except urllib.error.HTTPError as exc:
            last_error = exc
            if exc.code == 416:  # range not satisfiable: the partial file is unusable
                part.unlink(missing_ok=True)
            elif 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(
                    f"{url} answered HTTP {exc.code}; check datasets.<name>.url, or download the file by hand "
                    f"and put it at {dest}"
                ) from None
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            socket.timeout,
            TimeoutError,
            OSError,
        ) as exc:
            last_error = exc
    else:
        raise DownloadError(
            f"could not download {url} after {retries + 1} attempts ({last_error}). Download it by hand and "
            f"put it at {dest} (a partial download is kept at {part} and resumed next time), or set "
            "datasets.<name>.path to the extracted files."
        )
    try:
        verify(part, sha256, md5, url)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest


def extract(archive: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz) archive (or copy a plain file) into ``out_dir``, atomically.

    Truncated or damaged archives (missing zip directory, CRC errors, gzip stream ending early)
    raise :class:`DataError` and leave no ``out_dir``.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # half-extracted folders of a killed job
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; colleagues sharing the project must read the data
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in progress(zf.infolist(), desc=f"extract {archive.name}", unit="file"):
                    zf.extract(info, tmp)  # reading verifies each member's CRC
        elif archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive, "r:*") as tf:
                tf.extractall(tmp, filter="data")
        elif archive.suffix in (".zip", ".gz"):
            raise DataError(f"{archive} is not a valid {archive.suffix} archive (truncated download?)")
        else:
            shutil.copy2(archive, tmp / archive.name)
    except (zipfile.BadZipFile, EOFError, tarfile.ReadError, gzip.BadGzipFile, zlib.error) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive} is truncated or damaged ({type(exc).__name__}: {exc}); delete it and rerun to download it again"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def _published_md5(remote: Remote) -> str | None:
    if not remote.md5_url:
        return None
    try:
        with urllib.request.urlopen(remote.md5_url, timeout=20) as response:
            text = response.read(4096).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        log.warning(
            "published md5 %s not reachable (%s); the archive is checked by extraction only",
            remote.md5_url,
            exc,
        )
        return None
    token = text.split()[0] if text.split() else ""
    if len(token) == 32 and all(c in "0123456789abcdefABCDEF" for c in token):
        return token
    # "MD5 (ml-32m.zip) = <hash>"
    last = text.strip().split()[-1] if text.strip() else ""
    return last if len(last) == 32 else None


def download_dataset(
    name: str,
    spec: dict[str, Any],
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    **fetch_options: Any,
) -> Path:
    """Fetch (or reuse) the raw archive of dataset ``name`` into ``raw_dir`` and extract it to ``out_dir``."""
    remote = registry(spec["source"], spec.get("release"))
    url = spec.get("url") or remote.url
    sha256 = spec.get("sha256") or (remote.sha256 if url == remote.url else None)
    archive = Path(raw_dir) / url.rstrip("/").rpartition("/")[2]
    md5 = None
    if not archive.exists() and url == remote.url:
        md5 = _published_md5(remote)
    try:
        fetch(url, archive, sha256=sha256, md5=md5, **fetch_options)
    except DownloadError as exc:
        raise DownloadError(f"datasets.{name}: {exc}") from None
    return extract(archive, out_dir)
