"""Models: a ``Layer`` you can plot, ``Sequential`` and the ``MLP`` of the book."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import agrad.functions as F
from agrad import layers as L
from agrad.core import Variable

__all__ = ["Model", "Sequential", "MLP"]


class Model(L.Layer):
    """A layer that is a whole network; adds ``plot``."""

    def plot(self, *inputs: Any, to_file: str = "model.png") -> Any:
        """Run the model on ``inputs`` and export the graph of its output (DOT, and an image
        when Graphviz is installed) through ``agrad.utils.plot_dot_graph``."""
        from agrad import utils

        y = self.forward(*inputs)
        return utils.plot_dot_graph(y, verbose=True, to_file=to_file)


class Sequential(Model):
    """Layers applied one after the other; they are stored as ``l0, l1, ...``."""

    def __init__(self, *layers: L.Layer | Callable) -> None:
        super().__init__()
        self.layers = []
        for i, layer in enumerate(layers):
            setattr(self, f"l{i}", layer)
            self.layers.append(layer)

    def forward(self, x: Any) -> Variable:
        for layer in self.layers:
            x = layer(x)
        return x


class MLP(Model):
    """Fully connected layers of ``fc_output_sizes``, ``activation`` between them (not after)."""

    def __init__(
        self, fc_output_sizes: Iterable[int], activation: Callable[[Any], Variable] = F.sigmoid
    ) -> None:
        super().__init__()
        self.activation = activation
        self.layers = []
        for i, out_size in enumerate(fc_output_sizes):
            layer = L.Linear(out_size)
            setattr(self, f"l{i}", layer)
            self.layers.append(layer)

    def forward(self, x: Any) -> Variable:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
