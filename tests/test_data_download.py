"""download against an HTTP server started on 127.0.0.1: success, checksum mismatch, a connection
dropped mid-transfer, resume from a partial file, offline failure; archive extraction."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sagea.data.download import ChecksumError, DownloadError, download_dataset, extract, fetch
from sagea.data.prepare import prepare_dataset
from sagea.data.raw import DataError

PAYLOAD = bytes(range(256)) * 400  # 102 400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``files`` with Range support; ``drop_first`` closes the first response half-way."""

    def __init__(self, files: dict[str, bytes], drop_first: bool = False):
        self.files, self.drop_first, self.requests = files, drop_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                body = outer.files.get(self.path)
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if outer.drop_first and len(outer.requests) == 1:
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(files, **kw):
        servers.append(Server(files, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


FAST = dict(retries=2, backoff=0.01, timeout=5)


def test_success_with_checksum(server, tmp_path):
    s = server({"/data.bin": PAYLOAD})
    dest = fetch(f"{s.url}/data.bin", tmp_path / "data.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert s.requests == [("/data.bin", None)]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    s = server({"/data.bin": PAYLOAD})
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch(f"{s.url}/data.bin", tmp_path / "data.bin", sha256="0" * 64, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_connection_dropped_mid_transfer_is_resumed(server, tmp_path):
    s = server({"/data.bin": PAYLOAD}, drop_first=True)
    dest = fetch(f"{s.url}/data.bin", tmp_path / "data.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(s.requests) == 2
    assert s.requests[1] == ("/data.bin", f"bytes={len(PAYLOAD) // 2}-")


def test_resume_from_existing_partial_file(server, tmp_path):
    s = server({"/data.bin": PAYLOAD})
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    dest = fetch(f"{s.url}/data.bin", tmp_path / "data.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert s.requests == [("/data.bin", "bytes=1000-")]


def _closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/data.bin"


def test_present_file_used_without_network(tmp_path):
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    assert fetch(_closed_port_url(), tmp_path / "data.bin", sha256=SHA, **FAST).read_bytes() == PAYLOAD


def test_offline_failure_names_url_and_destination(tmp_path):
    url = _closed_port_url()
    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "data.bin", **FAST)
    assert url in str(err.value) and str(tmp_path / "data.bin") in str(err.value)
    assert not (tmp_path / "data.bin").exists()


def test_http_404_is_not_retried(server, tmp_path):
    s = server({})
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{s.url}/missing.zip", tmp_path / "missing.zip", **FAST)
    assert len(s.requests) == 1


def _zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _tgz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_zip_and_tgz_and_truncation(tmp_path):
    (tmp_path / "a.zip").write_bytes(_zip_bytes({"ml/ratings.csv": "x"}))
    assert (extract(tmp_path / "a.zip", tmp_path / "za") / "ml" / "ratings.csv").read_text() == "x"
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(4000))  # incompressible
    blob = _tgz_bytes({"lastfm/log.tsv": noise})
    (tmp_path / "b.tar.gz").write_bytes(blob)
    assert (extract(tmp_path / "b.tar.gz", tmp_path / "tb") / "lastfm" / "log.tsv").read_bytes() == noise
    (tmp_path / "c.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or damaged"):
        extract(tmp_path / "c.tar.gz", tmp_path / "tc")
    whole = _zip_bytes({"ml/ratings.csv": "y" * 5000})
    (tmp_path / "d.zip").write_bytes(whole[: len(whole) - 30])
    with pytest.raises(DataError, match="truncated|not a valid"):
        extract(tmp_path / "d.zip", tmp_path / "zd")
    assert not (tmp_path / "tc").exists() and not (tmp_path / "zd").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_download_dataset_then_prepare(server, tmp_path):
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},5.0,0\n" for u in range(3) for m in range(4)
    )
    s = server({"/ml-test.zip": _zip_bytes({"ml-test/ratings.csv": ratings})})
    spec = {
        "source": "movielens",
        "release": "ml-latest-small",
        "url": f"{s.url}/ml-test.zip",
        "sha256": None,
    }
    out = download_dataset("ml", spec, tmp_path / "raw", tmp_path / "raw" / "files", **FAST)
    assert (tmp_path / "raw" / "ml-test.zip").exists()
    card = prepare_dataset(
        "ml",
        {"source": "movielens", "filter": {"min_user_interactions": 1, "min_item_interactions": 1}},
        out,
        tmp_path / "data",
    )
    assert card["counts"]["interactions"] == 12


def test_published_md5_is_read_and_checked(server, tmp_path):
    from sagea.data.download import Remote, _published_md5

    md5 = hashlib.md5(PAYLOAD).hexdigest()
    s = server({"/a.md5": f"{md5}  data.bin\n".encode(), "/b.md5": f"MD5 (data.bin) = {md5}\n".encode(),
                "/data.bin": PAYLOAD})
    assert _published_md5(Remote(f"{s.url}/data.bin", md5_url=f"{s.url}/a.md5")) == md5
    assert _published_md5(Remote(f"{s.url}/data.bin", md5_url=f"{s.url}/b.md5")) == md5
    assert _published_md5(Remote(f"{s.url}/data.bin", md5_url=f"{s.url}/missing.md5")) is None
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        fetch(f"{s.url}/data.bin", tmp_path / "data.bin", md5="f" * 32, **FAST)


def test_archive_placed_by_hand_is_used_offline(tmp_path):
    from sagea.data.download import registry

    archive = tmp_path / "raw" / registry("movielens", "ml-1m").url.rpartition("/")[2]
    archive.parent.mkdir()
    archive.write_bytes(_zip_bytes({"ml-1m/ratings.dat": "1::2::5::0\n"}))
    spec = {"source": "movielens", "release": "ml-1m", "url": None, "sha256": None}
    out = download_dataset("ml", spec, tmp_path / "raw", tmp_path / "raw" / "files", retries=0, timeout=0.01)
    assert (out / "ml-1m" / "ratings.dat").read_text() == "1::2::5::0\n"
