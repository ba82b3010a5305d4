"""Layers (``import agrad.layers as L``): parameter containers with DeZero's API.

A :class:`Layer` registers every attribute that holds a :class:`~agrad.Parameter` or another
``Layer``, in the order they were assigned, so ``params()`` and saved files have a stable order
(DeZero keeps a set of names, whose order changes with ``PYTHONHASHSEED``).
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import re
import stat
import struct
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import agrad.functions as F
from agrad.backends import Backend, backend_of, current_backend, get_backend
from agrad.backends.numpy import host
from agrad.config import _train
from agrad.core import Function, Parameter, Variable
from agrad.utils import conv_pair, pair

__all__ = [
    "Layer",
    "WeightsMismatchError",
    "Linear",
    "Conv2d",
    "Deconv2d",
    "RNN",
    "LSTM",
    "EmbedID",
    "Embedding",
    "LayerNorm",
    "BatchNorm",
]


class WeightsMismatchError(ValueError):
    """A weights file does not fit the layer: names missing, extra, or of the wrong shape.

    Raised by :meth:`Layer.load_weights`; the message lists every mismatch. It is a
    ``ValueError``, so code that catches those catches it too.

    Examples
    --------
    >>> import agrad
    >>> import agrad.layers as L
    >>> L.Linear(3, in_size=2).save_weights("small.npz")
    >>> try:
    ...     L.Linear(3, in_size=4).load_weights("small.npz")
    ... except L.WeightsMismatchError as exc:
    ...     print(exc)
    load_weights('small.npz') does not fit Linear: wrong shape: W: file (2, 3), layer (4, 3)
    """


def _weak(x: Any) -> Any:
    """A weak reference where the object allows one (Python numbers do not)."""
    try:
        return weakref.ref(x)
    except TypeError:
        return lambda: x


def _dtype_name(dtype: Any) -> str:
    """A dtype's standard name (``'float32'``) from a string, NumPy type or backend dtype."""
    if isinstance(dtype, str):
        return dtype
    try:
        return get_backend("numpy").dtype_name(dtype)
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


class Layer:
    """A container of parameters and sub-layers; subclasses implement ``forward``.

    Every attribute assigned a :class:`~agrad.Parameter` or a ``Layer`` is registered, in
    assignment order; calling the layer calls ``forward`` and returns its output (a tuple only
    when ``forward`` returns several).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> import agrad.layers as L
    >>> class Scale(L.Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = agrad.Parameter(agrad.current_backend().asarray([2.0]), name="w")
    ...
    ...     def forward(self, x):
    ...         return self.w * x
    >>> layer = Scale()
    >>> y = layer(agrad.current_backend().asarray([1.0, 3.0]))
    >>> y
    variable([2. 6.])
    >>> F.sum(y).backward()
    >>> layer.w.grad
    variable([4.])
    """

    #: this layer's training flag (PyTorch's ``training``); :meth:`train` and :meth:`eval` set it
    training: bool = True

    def __init__(self) -> None:
        # attribute names of Parameters and Layers, in assignment order (a dict keeps it)
        object.__setattr__(self, "_params", {})

    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_params")
        if registry is None:  # a subclass assigned before calling Layer.__init__
            object.__setattr__(self, "_params", {})
            registry = self._params
        if isinstance(value, (Parameter, Layer)):
            registry.setdefault(name, None)
        else:
            registry.pop(name, None)  # reassigning None (say) must not leave a dangling name
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._params.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *inputs: Any) -> Any:
        if self.training:
            outputs = self.forward(*inputs)
        else:  # everything this layer runs (dropout, batch_norm, sub-layers) is in test mode
            token = _train.set(False)
            try:
                outputs = self.forward(*inputs)
            finally:
                _train.reset(token)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        self.inputs = [_weak(x) for x in inputs]
        self.outputs = [_weak(y) for y in outputs]
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *inputs: Any) -> Any:
        """Compute the outputs; every layer class implements it.

        Parameters
        ----------
        *inputs : Variable or array
            What the layer was called with.

        Returns
        -------
        Variable or tuple of Variable
            The output, or several.

        Raises
        ------
        NotImplementedError
            On ``Layer`` itself: a subclass must define it.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.current_backend().asarray([[1.0, 2.0]])
        >>> agrad.layers.Linear(3).forward(x).shape
        (1, 3)
        """
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    # -- parameters -------------------------------------------------------------------------
    def params(self) -> Iterator[Parameter]:
        """Every Parameter of this layer and its sub-layers, in registration order.

        Returns
        -------
        iterator of Parameter
            Including parameters not initialised yet (``data`` None until the first call).

        Examples
        --------
        >>> import agrad
        >>> [p.name for p in agrad.layers.Linear(3, in_size=2).params()]
        ['W', 'b']
        """
        for name in self._params:
            obj = self.__dict__[name]
            if isinstance(obj, Layer):
                yield from obj.params()
            else:
                yield obj

    def named_params(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(path, param)`` pairs, paths joined by ``/`` as in saved files (``l0/W``).

        Parameters
        ----------
        prefix : str, default ""
            Put before every path.

        Returns
        -------
        iterator of (str, Parameter)
            In the order of :meth:`params`.

        Examples
        --------
        >>> import agrad
        >>> model = agrad.models.MLP((4, 1))
        >>> [path for path, _ in model.named_params()]
        ['l0/W', 'l0/b', 'l1/W', 'l1/b']
        """
        for name in self._params:
            obj = self.__dict__[name]
            key = prefix + name
            if isinstance(obj, Layer):
                yield from obj.named_params(key + "/")
            else:
                yield key, obj

    def _flatten_params(self, params_dict: dict[str, Parameter], parent_key: str = "") -> None:
        """DeZero's helper: fill ``params_dict`` with ``path -> Parameter``."""
        prefix = parent_key + "/" if parent_key else ""
        params_dict.update(self.named_params(prefix))

    def _all_layers(self) -> Iterator[Layer]:
        """This layer and every sub-layer, depth first."""
        yield self
        for name in self._params:
            obj = self.__dict__[name]
            if isinstance(obj, Layer):
                yield from obj._all_layers()

    def cleargrads(self) -> None:
        """Forget the gradient of every parameter.

        Gradients accumulate across ``backward`` calls, so a training loop calls this before
        each one.

        Examples
        --------
        >>> import agrad
        >>> import agrad.functions as F
        >>> layer = agrad.layers.Linear(1, in_size=2)
        >>> F.sum(layer(agrad.current_backend().asarray([[1.0, 2.0]]))).backward()
        >>> layer.b.grad
        variable([1.])
        >>> layer.cleargrads()
        >>> layer.b.grad is None
        True
        """
        for param in self.params():
            param.cleargrad()

    # -- PyTorch's names --------------------------------------------------------------------
    def parameters(self) -> Iterator[Parameter]:
        """PyTorch's name for :meth:`params`: every Parameter, in registration order.

        Returns
        -------
        iterator of Parameter
            The same Parameters as :meth:`params`.

        Examples
        --------
        >>> import agrad
        >>> sum(p.size for p in agrad.layers.Linear(3, in_size=2).parameters())
        9
        """
        return self.params()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, param)`` pairs with PyTorch's dotted names (``l0.W``); see :meth:`named_params`.

        Parameters
        ----------
        prefix : str, default ""
            Put before every name.

        Returns
        -------
        iterator of (str, Parameter)
            In the order of :meth:`params`.

        Examples
        --------
        >>> import agrad
        >>> [name for name, _ in agrad.models.MLP((4, 1)).named_parameters()]
        ['l0.W', 'l0.b', 'l1.W', 'l1.b']
        """
        for path, param in self.named_params():
            yield prefix + path.replace("/", "."), param

    def zero_grad(self) -> None:
        """PyTorch's name for :meth:`cleargrads`: every parameter's ``grad`` becomes None.

        Examples
        --------
        >>> import agrad
        >>> layer = agrad.layers.Linear(1, in_size=2)
        >>> (layer(agrad.current_backend().asarray([[1.0, 2.0]])) * 1).backward()
        >>> layer.zero_grad()
        >>> layer.b.grad is None
        True
        """
        self.cleargrads()

    def train(self, mode: bool = True) -> Layer:
        """Set the training flag of this layer and every sub-layer (PyTorch's ``train``).

        A layer computes in training mode (dropout drops, batch_norm uses the batch's
        statistics and updates the running ones) only when both its flag and the global
        ``agrad.Config.train`` say so: :meth:`eval` or :func:`agrad.test_mode` alone is
        enough for test mode. A layer in eval mode runs its ``forward`` in test mode, so the
        layers and functions it calls do too.

        Parameters
        ----------
        mode : bool, default True
            True for training, False for evaluation.

        Returns
        -------
        Layer
            ``self``.

        Raises
        ------
        TypeError
            If ``mode`` is not a bool.

        Examples
        --------
        >>> import agrad
        >>> model = agrad.models.MLP((4, 1))
        >>> model.eval().training, model.l0.training
        (False, False)
        >>> model.train().l0.training
        True
        """
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be True or False, not {mode!r}")
        for layer in self._all_layers():
            object.__setattr__(layer, "training", mode)
        return self

    def eval(self) -> Layer:
        """Evaluation mode for this layer and every sub-layer: ``train(False)``.

        Returns
        -------
        Layer
            ``self``.

        Examples
        --------
        >>> import agrad
        >>> import agrad.functions as F
        >>> class Net(agrad.Model):
        ...     def forward(self, x):
        ...         return F.dropout(x, 0.5)
        >>> x = agrad.current_backend().asarray([1.0, 2.0])
        >>> Net().eval()(x)  # no dropout in evaluation mode
        variable([1. 2.])
        """
        return self.train(False)

    def state_dict(self) -> dict[str, Any]:
        """Every parameter as ``name -> array`` (PyTorch's dotted names), copied.

        BatchNorm's running statistics are Parameters, so they are included. The arrays stay
        on the layer's backend; they are copies, so training on does not change them.

        Returns
        -------
        dict of str to array
            In the order of :meth:`params`.

        Raises
        ------
        ValueError
            If a parameter is not initialised yet (run the model once first).

        Examples
        --------
        >>> import agrad
        >>> layer = agrad.layers.Linear(2, in_size=3)
        >>> {name: tuple(a.shape) for name, a in layer.state_dict().items()}
        {'W': (3, 2), 'b': (2,)}
        """
        state = {}
        for name, param in self.named_parameters():
            if param.data is None:
                raise ValueError(
                    f"state_dict: parameter {name!r} is not initialised yet (its shape is "
                    "inferred on the first call); run the model on an input first"
                )
            state[name] = param.backend.xp.asarray(param.data, copy=True)
        return state

    def load_state_dict(
        self, state: dict[str, Any], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Load ``name -> array`` (as :meth:`state_dict` gives) into the parameters.

        All or nothing, with :meth:`load_weights`' rules: every name, shape and dtype is
        checked and every array converted before any parameter changes; arrays are cast to
        their parameter's dtype where NumPy's ``same_kind`` rule allows, and move to the
        layer's backend. The parameters get copies of the arrays.

        Parameters
        ----------
        state : dict of str to array
            Arrays of any agrad backend (or Variables), keyed by dotted names.
        strict : bool, default True
            Every parameter must be in ``state`` and every key of ``state`` a parameter;
            False loads the names both have (shapes and dtypes are checked all the same).

        Returns
        -------
        (list of str, list of str)
            The names missing from ``state`` and those ``state`` has that the layer lacks
            (both empty when ``strict``).

        Raises
        ------
        WeightsMismatchError
            If names (``strict``) or shapes differ; the message lists every mismatch.
        TypeError
            If ``state`` is not a dict, a value is not an array, or cannot be cast.
        ValueError
            If values overflow a parameter's dtype.

        Examples
        --------
        >>> import agrad
        >>> source = agrad.layers.Linear(2, in_size=3)
        >>> copy = agrad.layers.Linear(2, in_size=3)
        >>> copy.load_state_dict(source.state_dict())
        ([], [])
        >>> bool(agrad.current_backend().xp.all(copy.W.data == source.W.data))
        True
        """
        if not isinstance(state, dict):
            raise TypeError(
                f"load_state_dict: state must be a dict of name -> array, not "
                f"{type(state).__name__}"
            )
        if not isinstance(strict, bool):
            raise TypeError(f"load_state_dict: strict must be True or False, not {strict!r}")
        by_path = {path.replace("/", "."): path for path, _ in self.named_params()}
        arrays = {}
        for name, value in state.items():
            data = value.data if isinstance(value, Variable) else value
            backend = backend_of(data, None) if data is not None else None
            if backend is None:
                raise TypeError(
                    f"load_state_dict: {name!r} must be an array of an agrad backend, not "
                    f"{type(value).__name__}"
                )
            arrays[by_path.get(name, name)] = host.array(backend.to_host(data))  # a copy
        missing = [name for name, path in by_path.items() if path not in arrays]
        unexpected = [name for name in state if name not in by_path]
        if not strict:
            arrays = {path: arrays[path] for path in by_path.values() if path in arrays}
        self._load_arrays(
            arrays, "load_state_dict", "the state dict", dotted=True, subset=not strict
        )
        return ([], []) if strict else (missing, unexpected)

    # -- moving between backends ------------------------------------------------------------
    def to(self, backend: str | Backend) -> Layer:
        """Move every parameter (and state such as an RNN's hidden state) to ``backend``.

        Parameters
        ----------
        backend : str or Backend
            ``"numpy"``, ``"cupy"``, ``"array_api_strict"`` or a backend object.

        Returns
        -------
        Layer
            ``self``.

        Raises
        ------
        ValueError
            If ``backend`` names no backend (the known names are listed).
        agrad.BackendUnavailableError
            A ``RuntimeError``: the backend cannot be used here (CuPy without a GPU, say).

        Examples
        --------
        >>> import agrad
        >>> layer = agrad.layers.Linear(2, in_size=3).to("numpy")
        >>> layer.W.backend.name
        'numpy'
        """
        target = get_backend(backend)
        target.require()
        for layer in self._all_layers():
            for name in layer._params:
                obj = layer.__dict__[name]
                if isinstance(obj, Parameter):
                    obj.to(target)
            layer._move_state(target)
        return self

    def _move_state(self, backend: Backend) -> None:
        """Move non-parameter state held by this layer; layers with such state override it."""

    def to_cpu(self) -> Layer:
        """Move to NumPy on the host.

        Returns
        -------
        Layer
            ``self``.

        Examples
        --------
        >>> import agrad
        >>> agrad.layers.Linear(2, in_size=3).to_cpu().b.backend.name
        'numpy'
        """
        return self.to("numpy")

    def to_gpu(self) -> Layer:
        """Move to CuPy on the current CUDA device.

        Returns
        -------
        Layer
            ``self``.

        Raises
        ------
        agrad.BackendUnavailableError
            A ``RuntimeError``: CuPy or a CUDA device is not available.

        Examples
        --------
        >>> import agrad
        >>> layer = agrad.layers.Linear(2, in_size=3)
        >>> if agrad.cuda.gpu_enable:
        ...     layer = layer.to_gpu()
        """
        return self.to("cupy")

    # -- saving and loading -----------------------------------------------------------------
    def save_weights(self, path: str | os.PathLike) -> None:
        """Write every parameter to an ``.npz`` file (``.npz`` is appended if missing).

        The arrays are copied to the host, so a file written from a GPU loads anywhere; the
        layer stays where it is. The file is written beside the target and renamed over it, so
        an interrupted save leaves the previous file intact; temporaries that a killed save left
        behind are removed by the next save of the same file. The file gets the permissions
        ``np.savez`` would give it: those of the file it replaces, else 0o666 less the umask.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.

        Raises
        ------
        ValueError
            If a parameter is not initialised yet (run the model once first).

        Examples
        --------
        >>> import agrad
        >>> model = agrad.models.MLP((4, 1))
        >>> model(agrad.current_backend().asarray([[1.0, 2.0]])).shape
        (1, 1)
        >>> model.save_weights("mlp")
        >>> import os
        >>> os.path.exists("mlp.npz")
        True
        """
        path = _npz_path(path)
        arrays = {}
        for key, param in self.named_params():
            if param.data is None:
                raise ValueError(
                    f"save_weights: parameter {key!r} is not initialised yet (its shape is "
                    "inferred on the first call); run the model on an input before saving"
                )
            arrays[key] = param.backend.to_host(param.data)
        directory = os.path.dirname(os.path.abspath(path))
        _remove_stale_temporaries(directory, os.path.basename(path))
        fd, temp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.{_TEMP_TAG}{os.getpid()}-",
            suffix=".tmp",
            dir=directory,
        )
        try:
            os.fchmod(fd, _mode_for(path))
            with os.fdopen(fd, "wb") as f:
                host.savez_compressed(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:  # KeyboardInterrupt included: never leave the temporary behind
            if os.path.exists(temp):
                os.remove(temp)
            raise

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load parameters saved by ``save_weights`` onto the backend the layer is on.

        All or nothing: every name, shape and dtype is checked and every array converted
        before any parameter changes. A mismatch of names or shapes raises
        :class:`WeightsMismatchError` listing what is missing, extra or of the wrong shape.
        Arrays are cast to the dtype of the parameter they load into (a float64 file keeps a
        float32 model float32, as PyTorch's ``load_state_dict`` copies into existing tensors;
        a parameter not created yet takes its layer's ``dtype``), with NumPy's ``same_kind``
        rule: float to float or int to float is cast, float to int or complex to real refused,
        and so are values that do not fit the target dtype (finite in the file, inf after the
        cast). Non-numeric arrays (strings, objects, dates) are refused by name. A file that
        is not an ``.npz`` archive, or is corrupt, gives a ``ValueError`` naming it.

        Parameters
        ----------
        path : str or os.PathLike
            The file; ``.npz`` is appended when ``path`` does not exist but ``path.npz`` does.

        Raises
        ------
        WeightsMismatchError
            If names or shapes differ between the file and the layer.
        TypeError
            If an array is not numeric, or cannot be cast to its parameter's dtype.
        ValueError
            If the file is not an ``.npz`` archive or is damaged, or values overflow the dtype.
        FileNotFoundError
            If neither ``path`` nor ``path.npz`` exists.

        Examples
        --------
        >>> import agrad
        >>> source = agrad.layers.Linear(2, in_size=3)
        >>> source.save_weights("linear.npz")
        >>> copy = agrad.layers.Linear(2, in_size=3)
        >>> copy.load_weights("linear.npz")
        >>> bool(agrad.current_backend().xp.all(copy.W.data == source.W.data))
        True
        """
        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        arrays = _read_npz(path)
        self._load_arrays(arrays, f"load_weights({path!r})", "the file")

    def _load_arrays(
        self,
        arrays: dict[str, Any],
        caller: str,
        source: str,
        dotted: bool = False,
        subset: bool = False,
    ) -> None:
        """Check every name, shape and dtype of host ``arrays`` (``path -> array``), then
        assign them all. ``subset``: only the parameters ``arrays`` names are loaded (none is
        missing); ``dotted``: messages name parameters as ``l0.W``."""
        params = dict(self.named_params())
        if subset:
            params = {key: param for key, param in params.items() if key in arrays}

        def shown(key: str) -> str:
            return key.replace("/", ".") if dotted else key

        missing = [shown(key) for key in params if key not in arrays]
        extra = [shown(key) for key in arrays if key not in params]
        wrong = [
            f"{shown(key)}: {source.split()[-1]} {tuple(arrays[key].shape)}, "
            f"layer {tuple(param.data.shape)}"
            for key, param in params.items()
            if key in arrays
            and param.data is not None
            and tuple(arrays[key].shape) != tuple(param.data.shape)
        ]
        if missing or extra or wrong:
            problems = []
            if missing:
                problems.append(f"missing from {source}: " + ", ".join(missing))
            if extra:
                problems.append("not in the layer: " + ", ".join(extra))
            if wrong:
                problems.append("wrong shape: " + "; ".join(wrong))
            raise WeightsMismatchError(
                f"{caller} does not fit {type(self).__name__}: " + " | ".join(problems)
            )
        layer_dtypes = self._declared_dtypes()
        default = self._backend()
        converted = {}
        for key, param in params.items():
            if param.data is not None:
                target, dtype_name = param.backend, param.backend.dtype_name(param.data.dtype)
            else:
                target, dtype_name = default, layer_dtypes.get(key)
            array = _cast_for_loading(caller, shown(key), arrays[key], dtype_name)
            converted[key] = target.asarray(array)
        for key, param in params.items():  # nothing above changed the layer; this cannot fail
            param.data = converted[key]

    def _declared_dtypes(self) -> dict[str, str]:
        """``path -> dtype name`` for parameters whose layer declares a ``dtype`` (``Linear``)."""
        declared = {}
        for key, param in self.named_params():
            owner = self._owner_of(key)
            dtype = getattr(owner, "dtype", None)
            if isinstance(dtype, str) and param.data is None:
                declared[key] = dtype
        return declared

    def _owner_of(self, key: str) -> Layer:
        layer = self
        for part in key.split("/")[:-1]:
            layer = layer.__dict__[part]
        return layer

    def _backend(self) -> Backend:
        """The backend of the first initialised parameter, else the current default."""
        for param in self.params():
            if param.data is not None:
                return param.backend
        return current_backend()


# the temporary of a save is ".<name>.agrad-<pid>-<random>.tmp"; the pid tells a save still
# running (another process writing the same file) from one that was killed
_TEMP_TAG = "agrad-"
_NON_NUMERIC_KINDS = {"U": "strings", "S": "bytes", "O": "Python objects", "M": "dates",
                      "m": "time deltas", "V": "raw records"}  # fmt: skip


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Delete the temporaries of earlier saves of ``name`` whose process no longer runs."""
    # mkstemp's random part is 8 of [a-z0-9_]; the pid-less form is what earlier versions wrote
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:{_TEMP_TAG}(\d+)-)?[a-z0-9_]{{8}}\.tmp")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        pid = match.group(1)
        if pid is not None and _process_running(int(pid)):
            continue  # a save in progress, perhaps another process's
        with contextlib.suppress(OSError):
            os.remove(os.path.join(directory, entry))


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own earlier save cannot still be running: saves do not overlap
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (owned by someone else)
    return True


def _mode_for(path: str) -> int:
    """The permissions ``open(path, 'wb')`` would leave: the old file's, else 0o666 - umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux reports it without changing it (os.umask is not thread-safe)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _read_npz(path: str) -> dict[str, Any]:
    """Every array of the ``.npz`` file at ``path``; a ``ValueError`` naming it if it is not one."""
    # zipfile also raises NotImplementedError (an unknown compression method), RuntimeError (an
    # encrypted member) and struct.error (a cut header) on damaged archives
    unreadable = (
        OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
        RuntimeError, struct.error,
    )  # fmt: skip
    # opened here, not by np.load, which leaves the file open when the archive is truncated
    with open(path, "rb") as file:
        try:
            loaded = host.load(file, allow_pickle=False)
        except unreadable as exc:
            raise ValueError(
                f"load_weights: {path!r} is not a weights file written by save_weights (an "
                f".npz archive): {type(exc).__name__}: {exc}"
            ) from exc
        if not hasattr(loaded, "files"):
            raise ValueError(
                f"load_weights: {path!r} holds a single array ({type(loaded).__name__}), not "
                "an .npz archive of named parameters as save_weights writes"
            )
        arrays = {}
        with loaded as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except unreadable as exc:  # a damaged member, or one holding Python objects
                    raise ValueError(
                        f"load_weights: cannot read {key!r} from {path!r} ({type(exc).__name__}: "
                        f"{exc}); a damaged file must be saved again"
                    ) from exc
        return arrays


def _cast_for_loading(caller: str, key: str, array: Any, dtype_name: str | None) -> Any:
    """``array`` (a host array to load), cast to ``dtype_name`` (None: kept) or refused by name;
    ``caller`` starts the messages (``load_weights('w.npz')``)."""
    kind = array.dtype.kind
    if kind in _NON_NUMERIC_KINDS:
        raise TypeError(
            f"{caller}: {key!r} holds {_NON_NUMERIC_KINDS[kind]} (dtype "
            f"{array.dtype}), not numbers; only numeric arrays load into parameters"
        )
    if dtype_name is None or array.dtype == host.dtype(dtype_name):
        return array
    target = host.dtype(dtype_name)
    if not host.can_cast(array.dtype, target, casting="same_kind"):
        raise TypeError(
            f"{caller}: {key!r} has dtype {array.dtype} and cannot be "
            f"cast safely to the parameter's {dtype_name} (allowed: the same kind or a "
            "narrower one, such as float64 into float32 or int into float)"
        )
    with host.errstate(over="ignore"):
        cast = array.astype(target)
    if target.kind in "fc" and bool(host.any(host.isinf(cast) & host.isfinite(array))):
        raise ValueError(
            f"{caller}: {key!r} holds values too large for the parameter's "
            f"{dtype_name} (they would become inf)"
        )
    return cast


def _npz_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def _positive_size(layer: str, name: str, value: Any) -> int:
    """``value`` as an int >= 1, else an error naming the layer's argument."""
    try:
        size = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        size = None
    if size is None:
        raise TypeError(f"{layer}: {name} must be a positive int, not {value!r}")
    if size < 1:
        raise ValueError(f"{layer}: {name} must be a positive int (>= 1), got {size}")
    return size


def _require_array(layer: str, x: Any) -> None:
    """Refuse, by name, an input that is not a Variable or an array (a list, say)."""
    if not isinstance(x, Variable) and backend_of(x, None) is None:
        raise TypeError(
            f"{layer}: the input must be a Variable or an array of an agrad backend, not "
            f"{type(x).__name__} ({x!r:.60}); make one with agrad.as_array(...)"
        )


def _input_backend(x: Any) -> Backend:
    data = x.data if isinstance(x, Variable) else x
    return backend_of(data)


class _AsType(Function):
    """``x`` cast to ``dtype``; the gradient is cast back to x's dtype."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        self.source_dtype = x.dtype
        return self.xp.astype(x, self.dtype)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        if isinstance(gy, Variable):  # a recorded backward: the cast back is differentiable too
            return _AsType(self.source_dtype)(gy)
        return self.xp.astype(gy, self.source_dtype)


def _in_layer_dtype(x: Any, param: Parameter) -> Any:
    """``x`` in the dtype of ``param``, as Keras layers cast their inputs.

    A float64 batch fed to a float32 layer would otherwise compute in float64 and hand the
    float32 weights float64 gradients (PyTorch raises instead; casting keeps DeZero's habit of
    feeding NumPy's float64 arrays to float32 models working). A Variable input is cast
    differentiably, so its own gradient keeps its dtype.
    """
    dtype = param.data.dtype
    if x.dtype == dtype:
        return x
    if isinstance(x, Variable):
        return _AsType(dtype)(x)
    return _input_backend(x).xp.astype(x, dtype)


class Linear(Layer):
    """``y = x W + b`` with W of shape ``(in_size, out_size)``; ``in_size`` may come from the input.

    W is drawn as ``randn(in, out) * sqrt(1 / in)`` in ``dtype`` (float32 stays float32) on the
    host (the same numbers on every backend for the same ``agrad.seed``) and moved to the
    backend of the first input when ``in_size`` is None, else on the default backend. As in
    PyTorch the features are the input's last axis: a 1-D input is one sample, an (N, in)
    input a batch, and more axes are batch axes too. Inputs of another dtype are cast to the
    layer's (see ``_in_layer_dtype``), so the layer's parameters and gradients keep ``dtype``.

    Parameters
    ----------
    out_size : int
        Output features.
    nobias : bool, default False
        Leave out ``b`` (then ``self.b`` is None).
    dtype : str or dtype, default "float32"
        Of ``W`` and ``b``.
    in_size : int or None, default None
        Input features; None infers them from the first input.

    Raises
    ------
    TypeError, ValueError
        If ``out_size`` or ``in_size`` is not an int >= 1; when called, ``ValueError`` if the
        input is 0-d or its last axis is not ``in_size``.

    Examples
    --------
    >>> import agrad
    >>> layer = agrad.layers.Linear(3)
    >>> x = agrad.current_backend().asarray([[1.0, 2.0]])
    >>> y = layer(x)
    >>> y.shape, y.dtype == layer.W.dtype
    ((1, 3), True)
    >>> layer.W.shape
    (2, 3)
    """

    def __init__(
        self,
        out_size: int,
        nobias: bool = False,
        dtype: Any = "float32",
        in_size: int | None = None,
    ) -> None:
        super().__init__()
        self.in_size = None if in_size is None else _positive_size("Linear", "in_size", in_size)
        self.out_size = _positive_size("Linear", "out_size", out_size)
        self.dtype = _dtype_name(dtype)
        self.b = None
        self.W = Parameter(None, name="W")
        if in_size is not None:
            self._init_W(current_backend())
        if not nobias:
            backend = current_backend()
            self.b = Parameter(
                backend.xp.zeros(out_size, dtype=backend.dtype(self.dtype)), name="b"
            )

    def _init_W(self, backend: Backend) -> None:
        in_size, out_size = self.in_size, self.out_size
        # drawn on the host: the same weights on every backend for the same agrad.seed
        W = backend.host_randn((in_size, out_size), self.dtype)
        self.W.data = W * math.sqrt(1 / in_size)  # a Python float keeps W's dtype
        # a bias made on another backend before the input was seen follows W
        if self.b is not None and self.b.backend is not backend:
            self.b.to(backend)

    def forward(self, x: Any) -> Variable:
        _require_array("Linear", x)
        if x.ndim == 0:
            raise ValueError(
                "Linear: the input must have at least one axis (its features), got a 0-d input"
            )
        if self.W.data is None:
            self.in_size = x.shape[-1]
            self._init_W(_input_backend(x))
        elif x.shape[-1] != self.W.shape[0]:
            raise ValueError(
                f"Linear: the input has {x.shape[-1]} features (last axis of shape "
                f"{tuple(x.shape)}) but the layer expects in_size={self.W.shape[0]}"
            )
        return F.linear(_in_layer_dtype(x, self.W), self.W, self.b)


class _ConvBase(Layer):
    """Shared set-up of ``Conv2d`` and ``Deconv2d``: lazy W, optional bias."""

    _in_axis = 1  # the axis of W that counts input channels

    def __init__(
        self,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        pad: int | tuple[int, int] = 0,
        nobias: bool = False,
        dtype: Any = "float32",
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        conv_pair(kernel_size, "kernel_size", 1, owner)  # bad geometry fails here, by name
        conv_pair(stride, "stride", 1, owner)
        conv_pair(pad, "pad", 0, owner)
        for argument, value in (("out_channels", out_channels), ("in_channels", in_channels)):
            if value is None and argument == "in_channels":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{owner}: {argument} must be an int >= 1, got {value!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.dtype = _dtype_name(dtype)
        self.b = None
        self.W = Parameter(None, name="W")
        if in_channels is not None:
            self._init_W(current_backend())
        if not nobias:
            backend = self.W.backend if self.W.data is not None else current_backend()
            self.b = Parameter(
                backend.xp.zeros(out_channels, dtype=backend.dtype(self.dtype)), name="b"
            )

    def _w_shape(self, C: int, OC: int, KH: int, KW: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _init_W(self, backend: Backend) -> None:
        C, OC = self.in_channels, self.out_channels
        KH, KW = pair(self.kernel_size)
        scale = math.sqrt(1 / (C * KH * KW))
        shape = self._w_shape(C, OC, KH, KW)
        self.W.data = backend.host_randn(shape, self.dtype) * scale  # as Linear's
        if self.b is not None and self.b.backend is not backend:
            self.b.to(backend)

    def _ensure_W(self, x: Any) -> None:
        _require_array(type(self).__name__, x)
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: input must be 4-D (N, C, H, W), got shape {tuple(x.shape)}"
            )
        if self.W.data is None:
            self.in_channels = x.shape[1]
            self._init_W(_input_backend(x))
        elif x.shape[1] != self.W.shape[self._in_axis]:
            C = self.W.shape[self._in_axis]
            raise ValueError(
                f"{type(self).__name__}: input has {x.shape[1]} channels (shape "
                f"{tuple(x.shape)}) but this layer's W {tuple(self.W.shape)} was built for "
                f"in_channels={C}; pass (N, {C}, H, W) or make a new layer"
            )


class Conv2d(_ConvBase):
    """2-D convolution, NCHW; W ``(out_channels, in_channels, KH, KW)``, inferred lazily.

    Parameters
    ----------
    out_channels : int
        Output channels.
    kernel_size : int or (int, int)
        ``(KH, KW)``; an int is used for both.
    stride : int or (int, int), default 1
        Step between windows.
    pad : int or (int, int), default 0
        Zeros added on each side of H and W.
    nobias : bool, default False
        Leave out ``b``.
    dtype : str or dtype, default "float32"
        Of ``W`` and ``b``.
    in_channels : int or None, default None
        None infers it from the first input.

    Raises
    ------
    ValueError
        If a size is out of range (named); when called, if the input is not 4-D or has
        another channel count than ``W`` was built for.

    Examples
    --------
    >>> import agrad
    >>> conv = agrad.layers.Conv2d(4, kernel_size=3, pad=1)
    >>> x = agrad.current_backend().xp.ones((2, 1, 5, 5))
    >>> conv(x).shape
    (2, 4, 5, 5)
    >>> conv.W.shape
    (4, 1, 3, 3)
    """

    def _w_shape(self, C: int, OC: int, KH: int, KW: int) -> tuple[int, ...]:
        return (OC, C, KH, KW)

    def forward(self, x: Any) -> Variable:
        self._ensure_W(x)
        return F.conv2d(_in_layer_dtype(x, self.W), self.W, self.b, self.stride, self.pad)


class Deconv2d(_ConvBase):
    """2-D transposed convolution, NCHW; W ``(in_channels, out_channels, KH, KW)``.

    It takes the same arguments as :class:`Conv2d` and raises the same errors; ``W`` is
    inferred from the first input when ``in_channels`` is None.

    Examples
    --------
    >>> import agrad
    >>> deconv = agrad.layers.Deconv2d(3, kernel_size=2, stride=2)
    >>> x = agrad.current_backend().asarray([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> deconv(x).shape
    (1, 3, 4, 4)
    >>> deconv.W.shape
    (1, 3, 2, 2)
    """

    _in_axis = 0

    def _w_shape(self, C: int, OC: int, KH: int, KW: int) -> tuple[int, ...]:
        return (C, OC, KH, KW)

    def forward(self, x: Any) -> Variable:
        self._ensure_W(x)
        return F.deconv2d(_in_layer_dtype(x, self.W), self.W, self.b, self.stride, self.pad)


class RNN(Layer):
    """Elman RNN: ``h = tanh(x W_x + b + h W_h)``; the state persists until ``reset_state()``.

    Parameters
    ----------
    hidden_size : int
        Size of the hidden state ``h``.
    in_size : int or None, default None
        Input features; None infers them from the first input.

    Examples
    --------
    >>> import agrad
    >>> rnn = agrad.layers.RNN(4)
    >>> x = agrad.current_backend().asarray([[1.0, 2.0]])
    >>> rnn(x).shape
    (1, 4)
    >>> h = rnn(x)  # uses the state the first call left
    >>> rnn.reset_state()
    >>> rnn.h is None
    True
    """

    def __init__(self, hidden_size: int, in_size: int | None = None) -> None:
        super().__init__()
        self.x2h = Linear(hidden_size, in_size=in_size)
        # DeZero builds this one with in_size=in_size, which breaks when in_size != hidden_size
        self.h2h = Linear(hidden_size, in_size=hidden_size, nobias=True)
        self.h: Variable | None = None

    def reset_state(self) -> None:
        """Forget the hidden state (start a new sequence).

        Examples
        --------
        >>> import agrad
        >>> rnn = agrad.layers.RNN(2, in_size=1)
        >>> _ = rnn(agrad.current_backend().asarray([[1.0]]))
        >>> rnn.reset_state()
        >>> rnn.h is None
        True
        """
        self.h = None

    def _move_state(self, backend: Backend) -> None:
        if self.h is not None:
            self.h.to(backend)

    def forward(self, x: Any) -> Variable:
        h_new = self.x2h(x) if self.h is None else self.x2h(x) + self.h2h(self.h)
        h_new = F.tanh(h_new)
        self.h = h_new
        return h_new


class LSTM(Layer):
    """Long short-term memory; hidden state ``h`` and cell ``c`` persist until ``reset_state()``.

    Parameters
    ----------
    hidden_size : int
        Size of ``h`` and ``c``.
    in_size : int or None, default None
        Input features; None infers them from the first input.

    Examples
    --------
    >>> import agrad
    >>> lstm = agrad.layers.LSTM(3)
    >>> x = agrad.current_backend().asarray([[0.5, -1.0]])
    >>> lstm(x).shape, lstm.c.shape
    ((1, 3), (1, 3))
    """

    def __init__(self, hidden_size: int, in_size: int | None = None) -> None:
        super().__init__()
        H = hidden_size
        self.x2f = Linear(H, in_size=in_size)
        self.x2i = Linear(H, in_size=in_size)
        self.x2o = Linear(H, in_size=in_size)
        self.x2u = Linear(H, in_size=in_size)
        self.h2f = Linear(H, in_size=H, nobias=True)
        self.h2i = Linear(H, in_size=H, nobias=True)
        self.h2o = Linear(H, in_size=H, nobias=True)
        self.h2u = Linear(H, in_size=H, nobias=True)
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the hidden state and the cell (start a new sequence).

        Examples
        --------
        >>> import agrad
        >>> lstm = agrad.layers.LSTM(2, in_size=1)
        >>> _ = lstm(agrad.current_backend().asarray([[1.0]]))
        >>> lstm.reset_state()
        >>> lstm.h is None and lstm.c is None
        True
        """
        self.h: Variable | None = None
        self.c: Variable | None = None

    def _move_state(self, backend: Backend) -> None:
        for state in (self.h, self.c):
            if state is not None:
                state.to(backend)

    def forward(self, x: Any) -> Variable:
        if self.h is None:
            f = F.sigmoid(self.x2f(x))
            i = F.sigmoid(self.x2i(x))
            o = F.sigmoid(self.x2o(x))
            u = F.tanh(self.x2u(x))
        else:
            f = F.sigmoid(self.x2f(x) + self.h2f(self.h))
            i = F.sigmoid(self.x2i(x) + self.h2i(self.h))
            o = F.sigmoid(self.x2o(x) + self.h2o(self.h))
            u = F.tanh(self.x2u(x) + self.h2u(self.h))
        c_new = i * u if self.c is None else f * self.c + i * u
        h_new = o * F.tanh(c_new)
        self.h, self.c = h_new, c_new
        return h_new


class EmbedID(Layer):
    """A lookup table: row ``x`` of W ``(in_size, out_size)`` for each integer id in ``x``.

    W is drawn from a standard normal in ``dtype`` (DeZero's is float64, NumPy's default).

    Parameters
    ----------
    in_size : int
        Number of ids (rows of W).
    out_size : int
        Size of each embedding.
    dtype : str or dtype, default "float32"
        Of ``W``.

    Raises
    ------
    TypeError, ValueError
        If ``in_size`` or ``out_size`` is not an int >= 1.

    Examples
    --------
    >>> import agrad
    >>> embed = agrad.layers.EmbedID(10, 4)
    >>> ids = agrad.current_backend().asarray([[1, 2, 3]])
    >>> embed(ids).shape
    (1, 3, 4)
    """

    def __init__(self, in_size: int, out_size: int, dtype: Any = "float32") -> None:
        super().__init__()
        in_size = _positive_size("EmbedID", "in_size", in_size)
        out_size = _positive_size("EmbedID", "out_size", out_size)
        backend = current_backend()
        self.W = Parameter(backend.host_randn((in_size, out_size), _dtype_name(dtype)), name="W")

    def forward(self, x: Any) -> Variable:
        return F.embed_id(x, self.W)


class BatchNorm(Layer):
    """Batch normalisation over axis 0 (2-D) or axes 0, 2, 3 (NCHW).

    ``gamma``/``beta`` are learned; ``avg_mean``/``avg_var`` are the running statistics used in
    test mode. All four are Parameters (so ``save_weights`` keeps them), created on the first
    call from the input's channel count, dtype and backend.

    Parameters
    ----------
    decay : float, default 0.9
        Weight of the old running statistics in each update.
    eps : float, default 2e-5
        Added to the variance before the square root.

    Examples
    --------
    In training mode (the default) the output is normalised with the batch's statistics:

    >>> import agrad
    >>> bn = agrad.layers.BatchNorm()
    >>> x = agrad.current_backend().asarray([[1.0, 2.0], [3.0, 6.0]])
    >>> y = bn(x)
    >>> y.shape, bn.avg_mean.shape
    ((2, 2), (2,))
    >>> bn.avg_mean
    variable([0.2 0.4])
    """

    def __init__(self, decay: float = 0.9, eps: float = 2e-5) -> None:
        super().__init__()
        self.decay = decay
        self.eps = eps
        self.avg_mean = Parameter(None, name="avg_mean")
        self.avg_var = Parameter(None, name="avg_var")
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")

    def _init_params(self, x: Any) -> None:
        xp = _input_backend(x).xp
        D = x.shape[1]
        dtype = x.dtype
        if self.avg_mean.data is None:
            self.avg_mean.data = xp.zeros(D, dtype=dtype)
        if self.avg_var.data is None:
            self.avg_var.data = xp.ones(D, dtype=dtype)
        if self.gamma.data is None:
            self.gamma.data = xp.ones(D, dtype=dtype)
        if self.beta.data is None:
            self.beta.data = xp.zeros(D, dtype=dtype)

    def forward(self, x: Any) -> Variable:
        _require_array("BatchNorm", x)
        if self.avg_mean.data is None:
            self._init_params(x)
        return F.batch_norm(
            _in_layer_dtype(x, self.gamma),
            self.gamma,
            self.beta,
            self.avg_mean,  # passed as Parameters: batch_norm rebinds their data (any backend)
            self.avg_var,
            decay=self.decay,
            eps=self.eps,
        )


class Embedding(EmbedID):
    """PyTorch's name for :class:`EmbedID`: a table of ``num_embeddings`` rows of
    ``embedding_dim``, drawn from a standard normal (as ``torch.nn.Embedding``).

    Parameters
    ----------
    num_embeddings : int
        Number of ids.
    embedding_dim : int
        Size of each embedding.
    dtype : str or dtype, default "float32"
        Of ``W``.

    Examples
    --------
    >>> import agrad
    >>> embed = agrad.layers.Embedding(10, 4)
    >>> embed(agrad.current_backend().asarray([1, 2])).shape
    (2, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: Any = "float32") -> None:
        super().__init__(num_embeddings, embedding_dim, dtype)


class LayerNorm(Layer):
    """Layer normalisation over the trailing ``normalized_shape`` (``torch.nn.LayerNorm``):
    ``weight`` starts at ones and ``bias`` at zeros.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing shape of the inputs.
    eps : float, default 1e-5
        Added to the variance.
    dtype : str or dtype, default "float32"
        Of ``weight`` and ``bias``.

    Examples
    --------
    >>> import agrad
    >>> norm = agrad.layers.LayerNorm(3)
    >>> norm(agrad.current_backend().asarray([[1.0, 2.0, 3.0]], dtype="float32")).shape
    (1, 3)
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, dtype: Any = "float32") -> None:
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        for n in shape:
            _positive_size("LayerNorm", "normalized_shape", n)
        self.normalized_shape = shape
        self.eps = eps
        backend = current_backend()
        name = _dtype_name(dtype)
        self.weight = Parameter(backend.asarray(host.ones(shape), dtype=name), name="weight")
        self.bias = Parameter(backend.asarray(host.zeros(shape), dtype=name), name="bias")

    def forward(self, x: Any) -> Variable:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
