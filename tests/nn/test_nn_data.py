"""Data sets, loaders, transforms, MNIST files (generated here, never downloaded) and seeding."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
import time

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import datasets, transforms
from agrad.cuda import as_numpy
from agrad.dataloaders import DataLoader, SeqDataLoader


def backend_name(x):
    return agrad.backends.backend_of(x).name


def _spiral_by_loop(seed):
    """DeZero's get_spiral written point by point (an independent check of the vector version)."""
    np.random.seed(seed)
    x = np.zeros((300, 2), dtype=np.float32)
    t = np.zeros(300, dtype=np.int64)
    for j in range(3):
        for i in range(100):
            rate = i / 100
            theta = j * 4.0 + 4.0 * rate + np.random.randn() * 0.2
            x[100 * j + i] = [rate * np.sin(theta), rate * np.cos(theta)]
            t[100 * j + i] = j
    order = np.random.permutation(300)
    return x[order], t[order]


@pytest.mark.parametrize("train, seed", [(True, 1984), (False, 2020)])
def test_get_spiral_matches_dezero_draws(train, seed):
    x, t = datasets.get_spiral(train)
    ex, et = _spiral_by_loop(seed)
    assert x.dtype == np.float32 and x.shape == (300, 2) and t.dtype == np.int64
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(t, et)
    after = np.random.rand()
    datasets.get_spiral(train)
    assert np.random.rand() == after  # it reseeds the global RNG, like DeZero


def test_dataset_items_and_transforms():
    spiral = datasets.Spiral(transform=lambda x: x * 2, target_transform=lambda t: t + 10)
    assert len(spiral) == 300
    x, t = spiral[0]
    np.testing.assert_array_equal(x, spiral.data[0] * 2)
    assert t == spiral.label[0] + 10
    assert spiral[np.int64(1)][1] == spiral.label[1] + 10
    with pytest.raises(TypeError, match="integers"):
        spiral[0:2]

    class Unlabelled(datasets.Dataset):
        def prepare(self):
            self.data = np.arange(4)

    assert Unlabelled()[2] == (2, None)


def test_sin_curve():
    train, test = datasets.SinCurve(train=True), datasets.SinCurve(train=False)
    assert train.data.shape == train.label.shape == (999, 1)
    assert train.data.dtype == np.float64
    np.testing.assert_array_equal(train.data[1:], train.label[:-1])
    np.testing.assert_allclose(test.data[:, 0], np.cos(np.linspace(0, 2 * np.pi, 1000))[:-1])
    assert np.max(np.abs(train.data[:, 0] - np.sin(np.linspace(0, 2 * np.pi, 1000))[:-1])) <= 0.05


def test_dataloader_batches_on_the_current_backend(xp):
    spiral = datasets.Spiral()
    loader = DataLoader(spiral, batch_size=128)
    assert loader.max_iter == len(loader) == 3
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [128, 128, 44]
    for x, t in batches:
        assert backend_name(x) == backend_name(t) == agrad.current_backend().name
        assert x.dtype == xp.float32 and t.dtype == xp.int64
    seen = np.concatenate([as_numpy(t) for _, t in batches])
    assert sorted(seen.tolist()) == sorted(spiral.label.tolist())
    assert loader.iteration == 0  # reset after the pass: iterable again
    assert len(list(loader)) == 3
    assert not loader.gpu


def test_dataloader_order_and_explicit_backend(xp):
    spiral = datasets.Spiral(transform=transforms.AsType("float64"))  # the per-item path
    loader = DataLoader(spiral, batch_size=100, shuffle=False, backend="numpy")
    x, t = next(loader)
    assert isinstance(x, np.ndarray) and x.dtype == np.float64
    np.testing.assert_array_equal(x, spiral.data[:100])
    np.testing.assert_array_equal(t, spiral.label[:100])
    loader.to(agrad.current_backend().name)
    x, _ = loader.next()
    assert backend_name(x) == agrad.current_backend().name
    np.testing.assert_array_equal(as_numpy(x), spiral.data[100:200])
    assert loader.to_cpu() is loader and not loader.gpu


def test_dataloader_to_gpu_without_cupy_raises():
    if agrad.get_backend("cupy").available:
        pytest.skip("a CUDA device is present")
    with pytest.raises(agrad.BackendUnavailableError):
        DataLoader(datasets.Spiral(), 10, gpu=True)


def test_seq_dataloader_streams(xp):
    curve = datasets.SinCurve(train=False)
    loader = SeqDataLoader(curve, batch_size=3)
    jump = len(curve) // 3
    x0, t0 = next(loader)
    x1, _ = next(loader)
    assert x0.shape == (3, 1) and backend_name(x0) == agrad.current_backend().name
    np.testing.assert_array_equal(as_numpy(x0)[:, 0], curve.data[[0, jump, 2 * jump], 0])
    np.testing.assert_array_equal(as_numpy(x1)[:, 0], curve.data[[1, jump + 1, 2 * jump + 1], 0])
    np.testing.assert_array_equal(as_numpy(t0)[:, 0], curve.label[[0, jump, 2 * jump], 0])


def test_transforms(xp):
    image = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    chain = transforms.Compose(
        [transforms.ToFloat(), transforms.Normalize([1.0, 2.0, 3.0], 2.0), transforms.Flatten()]
    )
    out = chain(image)
    expected = ((image.astype(np.float32) - np.array([1, 2, 3]).reshape(3, 1, 1)) / 2).ravel()
    assert out.dtype == np.float32 and out.shape == (12,)
    np.testing.assert_allclose(out, expected)
    assert transforms.Compose()(image) is image
    assert transforms.ToInt()(np.array([1.7])).dtype == np.int64
    assert transforms.AsType(np.float64)(image).dtype == np.float64
    on_backend = transforms.Normalize(0.0, 255.0)(xp.asarray([255.0], dtype=xp.float32))
    assert backend_name(on_backend) == agrad.current_backend().name
    assert on_backend.dtype == xp.float32


# -- MNIST from generated files -----------------------------------------------------------------


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(folder, n):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = rng.randint(0, 10, size=n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "train-images-idx3-ubyte.gz", images)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return images, labels


def _trust(folder, monkeypatch):
    """Make MNIST expect the checksums of the files now in ``folder``."""
    sums = dict(datasets.MNIST.sha256)
    for path in folder.iterdir():
        sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(datasets.MNIST, "sha256", sums)


def test_mnist_reads_local_idx_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    images, labels = _fake_mnist(tmp_path / "mnist", 7)
    _trust(tmp_path / "mnist", monkeypatch)

    def no_network(url, path):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(datasets, "_fetch", no_network)
    assert datasets.MNIST.available(train=True) and not datasets.MNIST.available(train=False)
    mnist = datasets.MNIST(train=True)
    assert len(mnist) == 7 and mnist.data.shape == (7, 1, 28, 28) and mnist.data.dtype == np.uint8
    x, t = mnist[3]
    assert x.shape == (784,) and x.dtype == np.float32
    np.testing.assert_allclose(x, images[3].ravel() / 255.0, rtol=1e-6)
    assert t == labels[3] and mnist.label.dtype == np.int64
    loader = DataLoader(mnist, batch_size=4)
    xb, tb = next(loader)
    assert xb.shape == (4, 784) and tb.shape == (4,)


def test_download_verifies_checksum_and_never_leaves_partial_files(tmp_path, monkeypatch):
    payload = b"pretend dataset"
    good = hashlib.sha256(payload).hexdigest()

    def fake_fetch(url, path):
        with open(path, "wb") as f:
            f.write(payload)

    monkeypatch.setattr(datasets, "_fetch", fake_fetch)
    target = tmp_path / "cache" / "file.gz"
    with pytest.raises(datasets.DatasetDownloadError, match="checksum mismatch"):
        datasets.download("https://example.invalid/file.gz", str(target), "0" * 64)
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []
    assert datasets.download("https://example.invalid/file.gz", str(target), good) == str(target)
    assert target.read_bytes() == payload

    def offline(url, path):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets, "_fetch", offline)
    other = tmp_path / "cache" / "other.gz"
    with pytest.raises(datasets.DatasetDownloadError, match="put the file at"):
        datasets.download("https://example.invalid/other.gz", str(other))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["file.gz"]


def test_read_idx_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x1f\x8bnot idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(str(bad))
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + b"\x01\x02")
    with pytest.raises(ValueError, match="wrong size"):
        datasets.read_idx(str(short))


def test_data_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    assert datasets.data_dir() == str(tmp_path)
    assert datasets.FashionMNIST.folder() == str(tmp_path / "fashion_mnist")


# -- seeding ------------------------------------------------------------------------------------


def _one_run(seed):
    spiral = datasets.Spiral()  # reseeds NumPy's RNG itself (DeZero's fixed data)
    agrad.seed(seed)
    loader = DataLoader(spiral, batch_size=10)  # shuffled on the current backend's seed
    model = agrad.models.MLP((5, 3))
    x, t = next(loader)
    y = F.dropout(model(x), 0.5)
    return as_numpy(t), as_numpy(model.l0.W), as_numpy(y)


def test_seed_repeats_init_shuffling_and_dropout(xp):
    first, second, other = _one_run(42), _one_run(42), _one_run(43)
    for a, b, c in zip(first, second, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("loader_class", [DataLoader, SeqDataLoader])
@pytest.mark.parametrize("batch_size", [0, -1, -128])
def test_batch_size_must_be_positive(loader_class, batch_size):
    """batch_size=0 used to raise ZeroDivisionError and batch_size=-1 gave no batches."""
    name = loader_class.__name__
    with pytest.raises(
        ValueError, match=rf"{name}: batch_size must be a positive int.*{batch_size}"
    ):
        loader_class(datasets.SinCurve(train=False), batch_size=batch_size)


@pytest.mark.parametrize("loader_class", [DataLoader, SeqDataLoader])
@pytest.mark.parametrize("batch_size", [2.5, 2.0, "8", None, True])
def test_batch_size_must_be_an_int(loader_class, batch_size):
    with pytest.raises(TypeError, match=r"batch_size must be a positive int, not"):
        loader_class(datasets.SinCurve(train=False), batch_size=batch_size)


def test_batch_size_accepts_numpy_ints():
    assert DataLoader(datasets.Spiral(), np.int64(100)).max_iter == 3


def test_seq_dataloader_batch_size_larger_than_the_data():
    """Every stream would have started at item 0 (jump = 0)."""
    curve = datasets.SinCurve(train=False)
    with pytest.raises(ValueError, match=rf"batch_size={len(curve) + 1} is larger than"):
        SeqDataLoader(curve, batch_size=len(curve) + 1)


# -- cached files are verified; downloads have a deadline ---------------------------------------


def _no_network(monkeypatch):
    def offline(url, path):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(datasets, "_fetch", offline)


def test_a_well_formed_fake_file_in_the_cache_is_refused(tmp_path, monkeypatch):
    """It used to load as if it were MNIST."""
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "mnist", 7)
    with pytest.raises(datasets.DatasetFileError) as info:
        datasets.MNIST(train=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "Delete it" in message
    assert "AGRAD_DATA_VERIFY=0" in message


def test_own_files_load_unchecked_with_agrad_data_verify_0(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGRAD_DATA_VERIFY", "0")
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "mnist", 7)
    assert len(datasets.MNIST(train=True)) == 7


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_a_corrupt_cached_gzip_is_named_with_what_to_do(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "mnist", 7)
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    data = images.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # the stored CRC of the uncompressed data no longer matches
        data = data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]
    images.write_bytes(data)
    _trust(tmp_path / "mnist", monkeypatch)  # the checksum passes: the gzip itself is bad
    with pytest.raises(
        datasets.DatasetFileError,
        match=r"train-images-idx3-ubyte.gz is not a "
        r"readable gzip file .* delete it",
    ):
        datasets.MNIST(train=True)


def test_cached_files_are_hashed_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv("AGRAD_DATA_DIR", str(tmp_path))
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "mnist", 7)
    _trust(tmp_path / "mnist", monkeypatch)
    calls = []
    real = datasets._sha256
    monkeypatch.setattr(datasets, "_sha256", lambda path: calls.append(path) or real(path))
    monkeypatch.setattr(datasets, "_VERIFIED", set())
    datasets.MNIST(train=True)
    datasets.MNIST(train=True)
    assert len(calls) == 2  # images and labels, the first time only
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes())  # rewritten: checked again
    os.utime(images, ns=(time.time_ns(), time.time_ns() + 10**9))
    datasets.MNIST(train=True)
    assert len(calls) == 3


class _Server:
    """A loopback HTTP server whose handler sends ``payload`` one byte every ``gap`` seconds."""

    def __init__(self, payload: bytes, gap: float) -> None:
        stop = self.stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                for i in range(len(payload)):
                    if stop.is_set():
                        return
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(gap)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_trickling_server_hits_the_download_deadline(tmp_path, monkeypatch, capsys):
    """One byte at a time, each well within the read timeout: it used to never time out."""
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 1.0)
    monkeypatch.setattr(datasets, "READ_TIMEOUT", 5.0)
    target = tmp_path / "cache" / "file.gz"
    with _Server(b"x" * 1000, gap=0.05) as server:
        started = time.monotonic()
        with pytest.raises(datasets.DatasetDownloadError, match=r"DOWNLOAD_TIMEOUT = 1.0 s"):
            datasets.download(server.url, str(target))
        assert time.monotonic() - started < 4.0
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []


def test_a_download_over_loopback_completes(tmp_path, monkeypatch, capsys):
    payload = bytes(range(256)) * 4
    target = tmp_path / "file.gz"
    with _Server(payload, gap=0.0) as server:
        datasets.download(server.url, str(target), hashlib.sha256(payload).hexdigest())
    assert target.read_bytes() == payload
