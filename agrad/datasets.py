"""Data sets (DeZero's ``datasets``): ``Dataset``, ``Spiral``, ``SinCurve``, ``MNIST``, ...

Data live on the host as NumPy arrays; a ``DataLoader`` moves each batch to the backend in use.
Files are downloaded once into a cache folder, ``$AGRAD_DATA_DIR`` or ``~/.agrad/datasets``,
checked against a SHA-256 sum, and read from there afterwards; a cached file is checked again
(once per process) unless ``$AGRAD_DATA_VERIFY`` is 0, for files you made yourself.
"""

from __future__ import annotations

import gzip
import hashlib
import operator
import os
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any, ClassVar

from agrad import transforms
from agrad.backends.numpy import host

__all__ = [
    "Dataset",
    "Spiral",
    "get_spiral",
    "SinCurve",
    "MNIST",
    "FashionMNIST",
    "DatasetDownloadError",
    "DatasetFileError",
    "data_dir",
    "download",
    "read_idx",
]


def _identity(x: Any) -> Any:
    return x


class Dataset:
    """Indexable ``(data, label)`` pairs; subclasses fill ``data`` and ``label`` in ``prepare``.

    ``transform`` is applied to each item's data and ``target_transform`` to its label.

    Parameters
    ----------
    train : bool, default True
        Which split ``prepare`` loads (the training one, else the test one).
    transform : callable or None, default None
        Applied to each item's data; None leaves it as it is.
    target_transform : callable or None, default None
        Applied to each item's label; None leaves it as it is.

    Raises
    ------
    TypeError
        When indexed with anything but one integer (``dataset[i]`` gives one item).

    Examples
    --------
    >>> import agrad
    >>> class Squares(agrad.datasets.Dataset):
    ...     def prepare(self):
    ...         self.data = [0.0, 1.0, 2.0, 3.0]
    ...         self.label = [0.0, 1.0, 4.0, 9.0]
    >>> squares = Squares(transform=lambda x: x / 10)
    >>> len(squares), squares[2]
    (4, (0.2, 4.0))
    >>> x, t = next(agrad.DataLoader(squares, batch_size=4, shuffle=False))
    >>> x.shape, t.shape
    ((4,), (4,))
    """

    def __init__(
        self,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        self.train = train
        self.transform = transform if transform is not None else _identity
        self.target_transform = target_transform if target_transform is not None else _identity
        self.data: Any = None
        self.label: Any = None
        self.prepare()

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__} indices must be integers (one item at a time), "
                f"not {type(index).__name__}"
            ) from None
        x = self.transform(self.data[index])
        if self.label is None:
            return x, None
        return x, self.target_transform(self.label[index])

    def __len__(self) -> int:
        return len(self.data)

    def prepare(self) -> None:
        """Set ``self.data`` and ``self.label``.

        Called by ``__init__``; a subclass reads ``self.train`` to choose the split and may
        leave ``label`` None (items are then ``(data, None)``).

        Examples
        --------
        >>> import agrad
        >>> class Unlabelled(agrad.datasets.Dataset):
        ...     def prepare(self):
        ...         self.data = [1.0, 2.0] if self.train else [3.0]
        >>> Unlabelled(train=False)[0]
        (3.0, None)
        """


# -- toy data -----------------------------------------------------------------------------------


def get_spiral(train: bool = True) -> tuple[Any, Any]:
    """Three interleaved spirals of 100 points each: ``x`` float32 ``(300, 2)``, ``t`` int64.

    Like DeZero, this reseeds NumPy's global legacy RNG (1984 for train, 2020 for test), so the
    points - and the random numbers drawn after it - are DeZero's.

    Parameters
    ----------
    train : bool, default True
        The training points, else the test points.

    Returns
    -------
    x : numpy.ndarray
        Float32 ``(300, 2)`` coordinates.
    t : numpy.ndarray
        Int64 ``(300,)`` classes, 0, 1 or 2.

    Examples
    --------
    >>> from agrad.datasets import get_spiral
    >>> x, t = get_spiral()
    >>> x.shape, x.dtype, t.shape, t.dtype
    ((300, 2), dtype('float32'), (300,), dtype('int64'))
    >>> sorted(set(t.tolist()))
    [0, 1, 2]
    """
    host.random.seed(1984 if train else 2020)
    num_data, num_class = 100, 3
    rate = host.arange(num_data) / num_data  # radius grows from 0 to 1 along each arm
    xs, ts = [], []
    for j in range(num_class):
        # one normal draw per point, in DeZero's order (class by class, point by point)
        theta = j * 4.0 + 4.0 * rate + host.random.randn(num_data) * 0.2
        xs.append(host.stack([rate * host.sin(theta), rate * host.cos(theta)], axis=1))
        ts.append(host.full(num_data, j, dtype=host.int64))
    x = host.concatenate(xs).astype(host.float32)
    t = host.concatenate(ts)
    order = host.random.permutation(num_data * num_class)
    return x[order], t[order]


class Spiral(Dataset):
    """The spiral data set of ``get_spiral`` (300 points, 3 classes).

    It takes :class:`Dataset`'s arguments; its items are ``(float32 (2,), int64)`` pairs.

    Examples
    --------
    >>> import agrad
    >>> spiral = agrad.datasets.Spiral(train=False)
    >>> len(spiral)
    300
    >>> x, t = spiral[0]
    >>> x.shape, int(t) in (0, 1, 2)
    ((2,), True)
    """

    def prepare(self) -> None:
        self.data, self.label = get_spiral(self.train)


class SinCurve(Dataset):
    """1000 points of a sine wave (train, with uniform noise in +-0.05) or a cosine (test);
    each item's label is the next value. float64, as in DeZero.

    It takes :class:`Dataset`'s arguments; there are 999 items, each ``(x, t)`` of shape
    ``(1,)``.

    Examples
    --------
    >>> import agrad
    >>> curve = agrad.datasets.SinCurve(train=False)
    >>> len(curve)
    999
    >>> x, t = curve[0]
    >>> x.shape, float(x[0]), bool(t[0] == curve[1][0][0])
    ((1,), 1.0, True)
    """

    def prepare(self) -> None:
        num_data = 1000
        x = host.linspace(0, 2 * host.pi, num_data)
        noise = host.random.uniform(-0.05, 0.05, size=x.shape)  # drawn for both, as DeZero does
        y = host.sin(x) + noise if self.train else host.cos(x)
        y = y.astype(host.float64)
        self.data = y[:-1][:, None]
        self.label = y[1:][:, None]


# -- files --------------------------------------------------------------------------------------


class DatasetDownloadError(RuntimeError):
    """A data set file could not be downloaded, or its checksum did not match.

    Raised by :func:`download`; nothing is left in the cache when it is.

    Examples
    --------
    >>> from pathlib import Path
    >>> from agrad.datasets import download
    >>> Path("points.csv").write_text("1,2")
    3
    >>> download(Path("points.csv").resolve().as_uri(), "copy.csv", sha256="0" * 64)
    Traceback (most recent call last):
    ...
    agrad.datasets.DatasetDownloadError: checksum mismatch for file:///...points.csv: ...
    >>> Path("copy.csv").exists()
    False
    """


class DatasetFileError(ValueError):
    """A cached data set file is damaged or not the expected one (delete it to download it).

    Raised by :func:`read_idx` and by :func:`download` when a cached file fails its checksum.

    Examples
    --------
    >>> from pathlib import Path
    >>> from agrad.datasets import read_idx
    >>> Path("images.idx").write_bytes(b"not an IDX file")
    15
    >>> read_idx("images.idx")
    Traceback (most recent call last):
    ...
    agrad.datasets.DatasetFileError: images.idx is not an IDX file (bad magic number b'not '); ...
    """


def data_dir() -> str:
    """The cache folder for data set files: ``$AGRAD_DATA_DIR``, else ``~/.agrad/datasets``.

    Returns
    -------
    str
        The folder (it may not exist yet: :func:`download` creates it).

    Examples
    --------
    >>> import os
    >>> from agrad.datasets import data_dir
    >>> saved = os.environ.pop("AGRAD_DATA_DIR", None)
    >>> data_dir() == os.path.join(os.path.expanduser("~"), ".agrad", "datasets")
    True
    >>> os.environ["AGRAD_DATA_DIR"] = "my-data"
    >>> data_dir()
    'my-data'
    >>> if saved is None:
    ...     del os.environ["AGRAD_DATA_DIR"]
    ... else:
    ...     os.environ["AGRAD_DATA_DIR"] = saved
    """
    path = os.environ.get("AGRAD_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), ".agrad", "datasets"
    )
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: seconds a whole download may take (a server trickling bytes would otherwise never time out)
DOWNLOAD_TIMEOUT = 600.0
#: seconds one read may wait for data
READ_TIMEOUT = 60.0
# (path, size, mtime) of cached files whose checksum was verified in this process
_VERIFIED: set[tuple[str, int, int]] = set()


def _verify_cache() -> bool:
    """False when ``$AGRAD_DATA_VERIFY`` is 0: cached files are used without their checksum
    (files you made or re-compressed yourself in the data set's format)."""
    return os.environ.get("AGRAD_DATA_VERIFY", "1").strip().lower() not in ("0", "false", "no")


def _check_cached(path: str, sha256: str) -> None:
    """The cached file at ``path`` must have ``sha256``, else an error that says to delete it."""
    info = os.stat(path)
    key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
    if key in _VERIFIED:
        return
    actual = _sha256(path)
    if actual != sha256:
        raise DatasetFileError(
            f"the cached file {path} is not the expected one (sha256 {actual}, expected "
            f"{sha256}): it is damaged or a different file. Delete it and it will be "
            "downloaded again (or set AGRAD_DATA_VERIFY=0 to use your own files unchecked)"
        )
    _VERIFIED.add(key)


def download(url: str, path: str, sha256: str | None = None) -> str:
    """Fetch ``url`` to ``path`` unless it is there already; verify ``sha256``; return ``path``.

    The download goes to a temporary file that is renamed only once complete and verified, so a
    failed or interrupted download never leaves a truncated file in the cache. A file already
    in the cache is verified too (once per process), unless ``$AGRAD_DATA_VERIFY`` is 0. The
    whole download must finish within ``DOWNLOAD_TIMEOUT`` seconds.

    Parameters
    ----------
    url : str
        Where to fetch the file from (any URL ``urllib`` opens).
    path : str
        Where to keep it; its folder is created if needed.
    sha256 : str or None, default None
        The file's expected SHA-256 (hex); None skips the check.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    DatasetDownloadError
        If the download fails or its checksum does not match.
    DatasetFileError
        If the file already at ``path`` does not match ``sha256``.

    Examples
    --------
    A ``file://`` URL stands in for a server here; a second call finds the file cached:

    >>> from pathlib import Path
    >>> from agrad.datasets import download
    >>> Path("points.csv").write_text("1,2")
    3
    >>> url = Path("points.csv").resolve().as_uri()
    >>> download(url, "cache/points.csv")
    Downloading file:///...points.csv -> cache/points.csv
    'cache/points.csv'
    >>> download(url, "cache/points.csv")
    'cache/points.csv'
    """
    if os.path.exists(path):
        if sha256 is not None and _verify_cache():
            _check_cached(path, sha256)
        return path
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    os.close(fd)
    try:
        print(f"Downloading {url} -> {path}")
        try:
            _fetch(url, temp)
        except OSError as exc:
            raise DatasetDownloadError(
                f"could not download {url}: {exc}; put the file at {path} yourself "
                "(or point $AGRAD_DATA_DIR at a folder that has it)"
            ) from exc
        if sha256 is not None:
            actual = _sha256(temp)
            if actual != sha256:
                raise DatasetDownloadError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}"
                )
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def _fetch(url: str, path: str) -> None:
    """Copy ``url`` to ``path`` within ``DOWNLOAD_TIMEOUT`` (tests replace this to stay offline).

    ``read1`` returns whatever one receive brings, so the deadline is checked however slowly
    the bytes come; ``read(n)`` would wait for all n bytes, each receive resetting the timeout.
    """
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT
    with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as response, open(path, "wb") as out:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the download took longer than DOWNLOAD_TIMEOUT = {DOWNLOAD_TIMEOUT} s"
                )
            block = response.read1(1 << 20)
            if not block:
                break
            out.write(block)


_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> Any:
    """Read an IDX file (MNIST's format), gzip-compressed or not, as a NumPy array.

    Parameters
    ----------
    path : str
        The file; a name ending in ``.gz`` is decompressed.

    Returns
    -------
    numpy.ndarray
        The array, in native byte order, of the shape and dtype its header gives.

    Raises
    ------
    DatasetFileError
        If the file is not IDX, has the wrong size for its header, or is a damaged gzip file.

    Examples
    --------
    >>> from pathlib import Path
    >>> from agrad.datasets import read_idx
    >>> header = bytes([0, 0, 0x08, 1, 0, 0, 0, 3])  # uint8, 1 axis of length 3
    >>> Path("three.idx").write_bytes(header + bytes([7, 8, 9]))
    11
    >>> read_idx("three.idx").tolist()
    [7, 8, 9]
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetFileError(
            f"{path} is not a readable gzip file ({type(exc).__name__}: {exc}); it is damaged: "
            "delete it and it will be downloaded again"
        ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetFileError(
            f"{path} is not an IDX file (bad magic number {raw[:4]!r}); if it is a cached "
            "download, delete it and it will be downloaded again"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in host.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = host.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(host.prod(shape, dtype=host.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFileError(
            f"{path}: header says shape {shape}, but the file has the wrong size; if it is a "
            "cached download, delete it and it will be downloaded again"
        )
    return (
        host.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


class MNIST(Dataset):
    """Handwritten digits, 28x28: data uint8 ``(N, 1, 28, 28)``, labels int64 (60000 train,
    10000 test). By default each item becomes a float32 vector of 784 values in [0, 1].

    The four IDX files are read from ``data_dir()/mnist`` and downloaded there once if missing.

    Parameters
    ----------
    train : bool, default True
        The training split, else the test split.
    transform : callable or None, default None
        Applied to each image; None means flatten, to float32, divide by 255.
    target_transform : callable or None, default None
        Applied to each label.

    Raises
    ------
    DatasetDownloadError
        If a file is missing and cannot be downloaded.
    DatasetFileError
        If a cached file is damaged.

    Examples
    --------
    Loading downloads the files when they are not cached, so this example loads only if they
    are:

    >>> from agrad.datasets import MNIST
    >>> MNIST.labels()[7]
    '7'
    >>> if MNIST.available(train=False):
    ...     x, t = MNIST(train=False)[0]
    ...     assert x.shape == (784,) and x.dtype.name == "float32"
    """

    name = "mnist"
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    files: ClassVar[dict[str, tuple[str, str]]] = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    sha256: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    }

    def __init__(
        self,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        if transform is None:
            transform = transforms.Compose(
                [transforms.Flatten(), transforms.ToFloat(), transforms.Normalize(0.0, 255.0)]
            )
        super().__init__(train, transform, target_transform)

    @classmethod
    def folder(cls) -> str:
        """Where this data set's files are cached.

        Returns
        -------
        str
            ``data_dir()`` joined with the data set's ``name``.

        Examples
        --------
        >>> import os
        >>> from agrad.datasets import FashionMNIST
        >>> os.path.basename(FashionMNIST.folder())
        'fashion_mnist'
        """
        return os.path.join(data_dir(), cls.name)

    @classmethod
    def paths(cls, train: bool = True) -> list[str]:
        """Local paths of the (images, labels) files of one split.

        Parameters
        ----------
        train : bool, default True
            The training split, else the test split.

        Returns
        -------
        list of str
            ``[images, labels]``, in :meth:`folder`.

        Examples
        --------
        >>> import os
        >>> from agrad.datasets import MNIST
        >>> [os.path.basename(p) for p in MNIST.paths(train=False)]
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
        """
        return [os.path.join(cls.folder(), f) for f in cls.files["train" if train else "test"]]

    @classmethod
    def available(cls, train: bool = True) -> bool:
        """Whether the files of this split are already in the cache (no download needed).

        Parameters
        ----------
        train : bool, default True
            The training split, else the test split.

        Returns
        -------
        bool
            True when both files exist (their checksums are checked on loading).

        Examples
        --------
        >>> from agrad.datasets import MNIST
        >>> isinstance(MNIST.available(), bool)
        True
        """
        return all(os.path.exists(p) for p in cls.paths(train))

    def prepare(self) -> None:
        images_path, labels_path = self.paths(self.train)
        for path in (images_path, labels_path):
            name = os.path.basename(path)
            download(self.base_url + name, path, self.sha256.get(name))
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{images_path} has {images.shape[0]} images but {labels_path} has "
                f"{labels.shape[0]} labels"
            )
        self.data = images.reshape(images.shape[0], 1, images.shape[1], images.shape[2])
        self.label = labels.astype(host.int64)

    @staticmethod
    def labels() -> dict[int, str]:
        """Class index -> name.

        Returns
        -------
        dict of int to str
            The ten classes.

        Examples
        --------
        >>> from agrad.datasets import MNIST
        >>> MNIST.labels()[3]
        '3'
        """
        return {i: str(i) for i in range(10)}


class FashionMNIST(MNIST):
    """Zalando's clothing images in MNIST's format (same shapes, 10 classes).

    It takes :class:`MNIST`'s arguments and raises its errors; files are cached in
    ``data_dir()/fashion_mnist``.

    Examples
    --------
    >>> from agrad.datasets import FashionMNIST
    >>> FashionMNIST.labels()[9]
    'Ankle boot'
    >>> if FashionMNIST.available(train=False):
    ...     x, t = FashionMNIST(train=False)[0]
    ...     assert x.shape == (784,)
    """

    name = "fashion_mnist"
    base_url = (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
    )
    sha256: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    }

    @staticmethod
    def labels() -> dict[int, str]:
        """Class index -> name.

        Returns
        -------
        dict of int to str
            The ten clothing classes.

        Examples
        --------
        >>> from agrad.datasets import FashionMNIST
        >>> FashionMNIST.labels()[0]
        'T-shirt/top'
        """
        names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
        return dict(enumerate(names))
