"""Models: a ``Layer`` you can plot, ``Sequential`` and the ``MLP`` of the book."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import agrad.functions as F
from agrad import layers as L
from agrad.core import Variable

__all__ = ["Model", "Sequential", "MLP"]


class Model(L.Layer):
    """A layer that is a whole network; adds ``plot``.

    Subclass it, assign layers as attributes in ``__init__`` (after ``super().__init__()``) and
    compute the output in ``forward``; calling the model calls ``forward``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> import agrad.layers as L
    >>> class TwoLayerNet(agrad.Model):
    ...     def __init__(self, hidden_size, out_size):
    ...         super().__init__()
    ...         self.l1 = L.Linear(hidden_size)
    ...         self.l2 = L.Linear(out_size)
    ...
    ...     def forward(self, x):
    ...         return self.l2(F.sigmoid(self.l1(x)))
    >>> model = TwoLayerNet(10, 1)
    >>> x = agrad.current_backend().asarray([[0.5, 1.0]], dtype="float32")
    >>> model(x).shape
    (1, 1)
    >>> len(list(model.params()))
    4
    """

    def plot(self, *inputs: Any, to_file: str = "model.png") -> Any:
        """Run the model on ``inputs`` and export the graph of its output.

        The graph is written as Graphviz DOT text beside ``to_file``, and drawn into
        ``to_file`` when Graphviz's ``dot`` program is installed, through
        :func:`agrad.utils.plot_dot_graph`.

        Parameters
        ----------
        *inputs : Variable or array
            The model's inputs, as for calling it.
        to_file : str, default "model.png"
            The image to write; its extension is the image format (``.dot`` writes only the
            DOT text).

        Returns
        -------
        IPython.display.Image or None
            The image when running under IPython, else None.

        Raises
        ------
        RuntimeError
            If Graphviz's ``dot`` program fails.

        Warns
        -----
        agrad.utils.GraphvizMissingWarning
            Once per process, when ``dot`` is not installed: only the DOT file is written.

        Examples
        --------
        >>> import agrad
        >>> model = agrad.models.MLP((3, 1))
        >>> x = agrad.current_backend().asarray([[1.0, 2.0]], dtype="float32")
        >>> model.plot(x, to_file="mlp.dot")
        >>> from pathlib import Path
        >>> Path("mlp.dot").read_text().startswith("digraph g {")
        True
        """
        from agrad import utils

        y = self.forward(*inputs)
        return utils.plot_dot_graph(y, verbose=True, to_file=to_file)


class Sequential(Model):
    """Layers applied one after the other; they are stored as ``l0, l1, ...``.

    Parameters
    ----------
    *layers : Layer or callable
        Applied in order; functions such as ``F.relu`` may stand between layers (they have no
        parameters).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> import agrad.layers as L
    >>> model = agrad.models.Sequential(L.Linear(4), F.relu, L.Linear(2))
    >>> x = agrad.current_backend().asarray([[1.0, 2.0, 3.0]], dtype="float32")
    >>> model(x).shape
    (1, 2)
    >>> [name for name, _ in model.named_params()]
    ['l0/W', 'l0/b', 'l2/W', 'l2/b']
    """

    def __init__(self, *layers: L.Layer | Callable) -> None:
        super().__init__()
        self.layers = []
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(
                    f"Sequential: layer {i} is {layer!r} ({type(layer).__name__}); expected a "
                    "Layer or a callable such as F.relu"
                )
            setattr(self, f"l{i}", layer)
            self.layers.append(layer)

    def forward(self, x: Any) -> Variable:
        """Apply every layer in turn to ``x``."""
        for layer in self.layers:
            x = layer(x)
        return x


class MLP(Model):
    """Fully connected layers of ``fc_output_sizes``, ``activation`` between them (not after).

    Parameters
    ----------
    fc_output_sizes : iterable of int
        The output size of each ``Linear`` layer, the last one being the model's output. Input
        sizes are inferred from the first batch.
    activation : callable, default agrad.functions.sigmoid
        Applied after every layer but the last.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> model = agrad.models.MLP((10, 3), activation=F.relu)
    >>> x = agrad.current_backend().asarray([[0.1, 0.2], [0.3, 0.4]], dtype="float32")
    >>> y = model(x)
    >>> y.shape
    (2, 3)
    >>> agrad.current_backend().dtype_name(y.dtype)
    'float32'
    """

    def __init__(
        self, fc_output_sizes: Iterable[int], activation: Callable[[Any], Variable] = F.sigmoid
    ) -> None:
        super().__init__()
        if isinstance(fc_output_sizes, (str, bytes)) or not isinstance(fc_output_sizes, Iterable):
            raise TypeError(
                f"MLP: fc_output_sizes must be a sequence of ints such as (10, 1), not "
                f"{fc_output_sizes!r}"
            )
        sizes = tuple(fc_output_sizes)
        if not sizes:
            raise ValueError(
                "MLP: fc_output_sizes is empty; give the output size of at least one layer, "
                "such as (10, 1)"
            )
        if not callable(activation):
            raise TypeError(
                f"MLP: activation must be a callable such as F.relu, not {activation!r}"
            )
        self.activation = activation
        self.layers = []
        for i, out_size in enumerate(sizes):
            layer = L.Linear(out_size)
            setattr(self, f"l{i}", layer)
            self.layers.append(layer)

    def forward(self, x: Any) -> Variable:
        """The output of the last layer for input ``x``."""
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
