"""get_dot_graph / plot_dot_graph: DOT text of a graph, and drawing it with or without Graphviz."""

from __future__ import annotations

import os
import re
import shutil
import stat
import warnings

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable, utils


def _graph(xp):
    x0 = Variable(xp.asarray(np.ones((2, 3))), name="x0")
    x1 = Variable(xp.asarray(np.full((2, 3), 2.0, dtype=np.float32)), name="x1")
    y = x0 * x1 + F.sin(x0)
    y.name = "y"
    return x0, x1, y


def _nodes(text):
    """node id -> attribute text, for every declared node."""
    return dict(re.findall(r"^(\d+) \[(.*)\]$", text, flags=re.MULTILINE))


def _edges(text):
    return set(re.findall(r"^(\d+) -> (\d+)$", text, flags=re.MULTILINE))


def test_dot_text_has_every_node_and_edge(xp):
    x0, x1, y = _graph(xp)
    text = utils.get_dot_graph(y, verbose=True)
    assert text.startswith("digraph g {\n") and text.endswith("}")
    nodes, edges = _nodes(text), _edges(text)
    # the graph is drawn from its nodes: variables nobody holds (x0 * x1, sin(x0)) are there too
    add = y.creator
    product, sine = add.input_nodes
    mul, sin = product.creator, sine.creator
    float_name = agrad.current_backend().dtype_name(y.dtype)
    assert nodes[str(id(y.node))] == f'label="y: (2, 3) {float_name}", color=orange, style=filled'
    assert 'label="x0: (2, 3) float64"' in nodes[str(id(x0.node))]
    assert "(2, 3)" in nodes[str(id(x1.node))]
    for func, name in ((add, "Add"), (mul, "Mul"), (sin, "Sin")):
        assert nodes[str(id(func))] == f'label="{name}", color=lightblue, style=filled, shape=box'
    expected = {
        (id(x0.node), id(mul)),
        (id(x1.node), id(mul)),
        (id(x0.node), id(sin)),
        (id(mul), id(product)),
        (id(sin), id(sine)),
        (id(product), id(add)),
        (id(sine), id(add)),
        (id(add), id(y.node)),
    }
    assert edges == {(str(a), str(b)) for a, b in expected}
    # one declaration per node even though x0 feeds two functions
    declared = re.findall(r"^(\d+) \[", text, flags=re.MULTILINE)
    assert len(declared) == len(set(declared)) == 8


def test_dot_text_is_whole_after_backward_released_the_graph(xp):
    _, _, y = _graph(xp)
    before = utils.get_dot_graph(y)
    F.sum(y).backward()
    assert utils.get_dot_graph(y) == before


def test_dot_text_without_details(xp):
    x0, _, y = _graph(xp)
    text = utils.get_dot_graph(y, verbose=False)
    nodes = _nodes(text)
    assert nodes[str(id(x0.node))].startswith('label="x0"')
    assert "(2, 3)" not in text
    unnamed = [attrs for attrs in nodes.values() if attrs.startswith('label=""')]
    assert len(unnamed) == 2  # the outputs of Mul and Sin


def test_dot_text_of_a_leaf_and_of_quotes():
    v = Variable(np.zeros(2), name='say "hi"')
    text = utils.get_dot_graph(v)
    assert 'label="say \\"hi\\": (2,) float64"' in text
    assert "->" not in text


@pytest.fixture
def no_graphviz(monkeypatch, tmp_path):
    """A PATH without ``dot`` and a fresh warn-once flag."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(utils, "_graphviz_warned", False)


def test_plot_without_graphviz_writes_dot_and_warns_once(no_graphviz, tmp_path):
    _, _, y = _graph(np)
    target = tmp_path / "out" / "graph.png"
    with pytest.warns(utils.GraphvizMissingWarning, match="Install Graphviz") as caught:
        assert utils.plot_dot_graph(y, to_file=str(target)) is None
    assert "apt-get install graphviz" in str(caught[0].message)
    assert issubclass(utils.GraphvizMissingWarning, UserWarning)
    dot_file = tmp_path / "out" / "graph.dot"
    assert dot_file.read_text() == utils.get_dot_graph(y)
    assert not target.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call is silent
        utils.plot_dot_graph(y, verbose=False, to_file=str(target))
    assert dot_file.read_text() == utils.get_dot_graph(y, verbose=False)


def test_plot_without_graphviz_via_which(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(utils, "_graphviz_warned", False)
    _, _, y = _graph(np)
    with pytest.warns(utils.GraphvizMissingWarning):
        utils.plot_dot_graph(y, to_file=str(tmp_path / "g.svg"))
    assert (tmp_path / "g.dot").exists()


def test_plot_to_a_dot_file_needs_no_graphviz(no_graphviz, tmp_path):
    _, _, y = _graph(np)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utils.plot_dot_graph(y, to_file=str(tmp_path / "graph.dot"))
    assert (tmp_path / "graph.dot").read_text() == utils.get_dot_graph(y)


def _fake_dot(folder, body):
    folder.mkdir()
    script = folder / "dot"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(os.name == "nt", reason="the stand-in `dot` is a POSIX shell script")
def test_plot_calls_dot_with_the_format_of_to_file(monkeypatch, tmp_path):
    log = tmp_path / "args.txt"
    _fake_dot(tmp_path / "bin", f'echo "$@" > {log}\necho drawn > "$5"\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _, _, y = _graph(np)
    target = tmp_path / "graph.svg"
    utils.plot_dot_graph(y, to_file=str(target))
    assert log.read_text().split() == [str(tmp_path / "graph.dot"), "-T", "svg", "-o", str(target)]
    assert target.read_text() == "drawn\n"


@pytest.mark.skipif(os.name == "nt", reason="the stand-in `dot` is a POSIX shell script")
def test_plot_reports_a_failing_dot(monkeypatch, tmp_path):
    _fake_dot(tmp_path / "bin", 'echo "Format: \\"nope\\" not recognized" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _, _, y = _graph(np)
    with pytest.raises(RuntimeError, match="not recognized"):
        utils.plot_dot_graph(y, to_file=str(tmp_path / "graph.nope"))


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz is not installed (no `dot` on PATH)"
)
def test_plot_with_graphviz_draws_a_png(tmp_path, xp):
    _, _, y = _graph(xp)
    target = tmp_path / "graph.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert utils.plot_dot_graph(y, verbose=True, to_file=str(target)) is None
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "graph.dot").exists()
