"""The documentation's examples run, on every backend, and its reference covers every public name.

Examples are the ``>>>`` lines of docstrings anywhere in agrad and of the ``pycon`` code blocks of
the pages under ``docs/``. Each runs once per backend of the ``xp`` fixture, with that backend as
agrad's default, so an example that only works on NumPy fails here.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import io
import os
import pkgutil
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import agrad

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# a fenced block of the Markdown pages: ```pycon ... ```
PYCON_BLOCK = re.compile(r"^```pycon[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _docstring_tests() -> tuple[list[doctest.DocTest], dict[str, str]]:
    """The docstring examples of every agrad module whose source has one (others aren't imported:
    ``agrad.distributed.mpi`` would start MPI), and the modules whose examples do not parse."""
    tests = []
    broken = {}
    finder = doctest.DocTestFinder()
    for info in pkgutil.walk_packages(agrad.__path__, "agrad."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or ">>>" not in Path(spec.origin).read_text("utf-8"):
            continue
        module = importlib.import_module(info.name)
        try:
            tests += [t for t in finder.find(module, info.name) if t.examples]
        except ValueError as exc:  # one malformed example must not hide every other module's
            broken[info.name] = str(exc)
    return sorted(tests, key=lambda t: t.name), broken


def _page_tests() -> list[doctest.DocTest]:
    """One test per Markdown page under docs/ that has ``pycon`` blocks, run as one session."""
    parser = doctest.DocTestParser()
    tests = []
    for page in sorted(DOCS.rglob("*.md")):
        if "_build" in page.parts:
            continue
        text = page.read_text(encoding="utf-8")
        examples = []
        for block in PYCON_BLOCK.finditer(text):
            lineno = text.count("\n", 0, block.start(1))
            for example in parser.get_examples(block.group(1)):
                example.lineno += lineno
                examples.append(example)
        if examples:
            name = str(page.relative_to(ROOT))
            tests.append(doctest.DocTest(examples, {}, name, str(page), 0, text))
    return tests


DOCSTRING_TESTS, UNPARSABLE_DOCSTRINGS = _docstring_tests()
PAGE_TESTS = _page_tests()


# PyTorch's shapes are torch.Size, a tuple subclass that compares equal to the tuple the examples
# show but prints differently
TORCH_SIZE = re.compile(r"torch\.Size\(\[([^\]]*)\]\)")


def _as_tuple(match: re.Match[str]) -> str:
    inside = match.group(1)
    return f"({inside},)" if inside and "," not in inside else f"({inside})"


class _ShapeChecker(doctest.OutputChecker):
    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return super().check_output(want, TORCH_SIZE.sub(_as_tuple, got), optionflags)


def _run(test: doctest.DocTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    test.globs = dict(test.globs)  # each backend starts from the module's names, not the last run
    out: list[str] = []
    runner = doctest.DocTestRunner(checker=_ShapeChecker(), optionflags=FLAGS)
    result = runner.run(test, out=out.append, clear_globs=True)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} examples failed:\n" + "".join(out))


_JAX_IMMUTABLE = (
    "JAX arrays are immutable: the example passes running statistics as plain arrays, which "
    "batch_norm updates in place (on JAX pass Parameters, as BatchNorm the layer does)"
)
#: (backend, example) -> the library's limit that keeps the example from running there
LIMITS = {
    ("jax", "agrad.functions.regularization.BatchNorm"): _JAX_IMMUTABLE,
    ("jax", "agrad.functions.regularization.batch_norm"): _JAX_IMMUTABLE,
    ("dask", "agrad.functions.indexing.get_item"): (
        "Dask cannot know the shape of x[mask] before computing it (the example indexes by one)"
    ),
    ("dask", "agrad.functions.loss.softmax_cross_entropy"): (
        "the example shows the ValueError for a label out of range; on Dask the check stays in "
        "the graph and the loss is NaN (computing mid-graph would defeat laziness)"
    ),
    ("dask", "docs/guides/migrating-from-dezero.md"): (
        "1,000 hand-written updates build one Dask graph 1,000 steps deep, which Dask's "
        "recursion cannot compute (optimizers persist each step; the book loop does not)"
    ),
}


def _skip_where_the_library_cannot(test: doctest.DocTest, request: pytest.FixtureRequest) -> None:
    reason = LIMITS.get((request.node.callspec.params["xp"], test.name))
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=[t.name for t in DOCSTRING_TESTS])
def test_docstring_examples(test: doctest.DocTest, xp, request, tmp_path, monkeypatch) -> None:
    _skip_where_the_library_cannot(test, request)
    _run(test, tmp_path, monkeypatch)


@pytest.mark.parametrize("test", PAGE_TESTS, ids=[t.name for t in PAGE_TESTS])
def test_page_examples(test: doctest.DocTest, xp, request, tmp_path, monkeypatch) -> None:
    _skip_where_the_library_cannot(test, request)
    _run(test, tmp_path, monkeypatch)


# README.md's code blocks (python and pycon) run too: each block on its own, on every backend,
# as a user would paste it into a script (so with Python's default warning filters); a block that
# starts MPI runs in a fresh process of its own.
README = ROOT / "README.md"
CODE_BLOCK = re.compile(r"^```(python|pycon)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _readme_blocks() -> list[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in CODE_BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((f"README.md:{line}", match.group(1), match.group(2)))
    return blocks


README_BLOCKS = _readme_blocks()


def _starts_mpi(code: str) -> bool:
    return "agrad.distributed" in code and "create_communicator" in code


LOCAL_BLOCKS = [block for block in README_BLOCKS if not _starts_mpi(block[2])]
MPI_BLOCKS = [block for block in README_BLOCKS if _starts_mpi(block[2])]


@pytest.mark.parametrize("where, kind, code", LOCAL_BLOCKS, ids=[b[0] for b in LOCAL_BLOCKS])
def test_readme_code_blocks(where, kind, code, xp, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", RuntimeWarning)  # the anomaly block's 1/0, on purpose
        if kind == "pycon":
            test = doctest.DocTestParser().get_doctest(code, {}, where, str(README), 0)
            _run(test, tmp_path, monkeypatch)
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, where, "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("where, kind, code", MPI_BLOCKS, ids=[b[0] for b in MPI_BLOCKS])
def test_readme_mpi_code_blocks(where, kind, code, tmp_path) -> None:
    # MPI starts once per process: the block runs in a fresh one, as a single-process job
    pytest.importorskip("mpi4py", reason="mpi4py (agrad[mpi]) is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGRAD_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr}"


def test_readme_has_code_blocks() -> None:
    kinds = {kind for _, kind, _ in README_BLOCKS}
    assert len(README_BLOCKS) >= 5 and "python" in kinds and MPI_BLOCKS


def test_every_limit_names_an_example() -> None:
    names = {t.name for t in DOCSTRING_TESTS + PAGE_TESTS}
    assert {name for _, name in LIMITS} <= names


def test_docstring_examples_parse() -> None:
    assert not UNPARSABLE_DOCSTRINGS


def test_pages_have_examples() -> None:
    # the guides' pycon blocks are what runs; a page whose blocks stopped matching would pass
    assert len(PAGE_TESTS) >= 5, [t.name for t in PAGE_TESTS]
    assert sum(len(t.examples) for t in DOCSTRING_TESTS) > 0


# Modules whose every public name has a numpydoc docstring with Examples (issue 14's first pass);
# add a module here once its docstrings are complete, and this test keeps them so.
NUMPYDOC_MODULES = {
    "agrad.layers": (),
    "agrad.dataloaders": (),
    "agrad.datasets": (),
    "agrad.core": (),
    "agrad.backprop": (),
    "agrad.optimizers": (),
    "agrad.models": (),
    "agrad.transforms": (),
    "agrad.cuda": (),
    "agrad.functions.activation": (),
    "agrad.functions.arithmetic": (),
    "agrad.functions.casting": (),
    "agrad.functions.conv": (),
    "agrad.functions.elementwise": (),
    "agrad.functions.indexing": (),
    "agrad.functions.linalg": (),
    "agrad.functions.loss": (),
    "agrad.functions.reduction": (),
    "agrad.functions.regularization": (),
    "agrad.functions.shape": (),
    "agrad.config": (),
    "agrad.func": (),
    # backend_for_type is a bound dict.get (no docstring of its own): backend_of's shows it
    "agrad.backends": ("backend_for_type",),
    "agrad.backends._base": (),
    "agrad.anomaly": (),
    "agrad.amp": (),
    # its examples run without MPI: stand-in communicators, and code-blocks for what needs a job
    "agrad.distributed": (),
    "agrad.utils": (),
}


def _public_callables(module_name: str, exempt: tuple[str, ...]) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    ]
    return [(name, getattr(module, name)) for name in names if name not in exempt]


@pytest.mark.parametrize("module_name", sorted(NUMPYDOC_MODULES))
def test_public_names_have_examples(module_name: str) -> None:
    lacking = []
    for name, value in _public_callables(module_name, NUMPYDOC_MODULES[module_name]):
        doc = type(value).__doc__ if name == "Config" else value.__doc__
        if name == "GraphvizMissingWarning":  # a warning class: nothing to call
            continue
        if not doc or ">>>" not in doc:  # an Examples section that runs
            lacking.append(name)
    assert not lacking, f"{module_name}: no Examples in the docstrings of {lacking}"


def _docs_conf():
    spec = importlib.util.spec_from_file_location("agrad_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_reference_lists_every_public_name() -> None:
    conf = _docs_conf()
    plan = conf.plan_reference()
    for module_name in conf.API_MODULES:
        module = importlib.import_module(module_name)
        documented, linked = plan[module_name]
        for name in getattr(module, "__all__", []):
            if not isinstance(getattr(module, name), type(agrad)):
                assert name in documented or name in linked, f"{module_name}.{name}"
    issue_modules = {
        "agrad", "agrad.functions", "agrad.layers", "agrad.models", "agrad.optimizers",
        "agrad.datasets", "agrad.transforms", "agrad.utils", "agrad.cuda", "agrad.distributed",
    }  # fmt: skip
    assert issue_modules <= set(conf.API_MODULES)
    assert "Variable" in plan["agrad"][0]
    assert "relu" in plan["agrad.functions"][0]


def test_docs_requirements_match_the_docs_extra() -> None:
    # a regular expression, not tomllib: that needs Python 3.11 and agrad supports 3.10
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    extra = re.findall(r'"([^"]+)"', re.search(r"^docs = \[(.*)\]$", pyproject, re.M).group(1))
    lines = (DOCS / "requirements.txt").read_text("utf-8").splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(requirements) == sorted(extra)


def test_functions_reference_is_grouped_by_kind_with_the_nodes_apart() -> None:
    conf = _docs_conf()
    documented, linked = conf.plan_reference()["agrad.functions"]
    page = conf._page("agrad.functions", documented, linked)
    calls, nodes = page.split("\nFunction nodes\n")
    listed = re.findall(r"^   (\w+)$", page, re.MULTILINE)
    assert sorted(listed) == sorted(documented)  # each name once
    for heading in ("Arithmetic", "Activations", "Losses and metrics", "Convolution and pooling"):
        assert f"\n{heading}\n" in calls and f"\n{heading} (nodes)\n" in nodes
    called = re.findall(r"^   (\w+)$", calls, re.MULTILINE)
    assert "add" in called and "relu" in called and "Add" not in called
    node_names = re.findall(r"^   (\w+)$", nodes, re.MULTILINE)
    assert node_names and all(name[0].isupper() for name in node_names)
    # a kind's functions sit under its heading: relu with the activations, not the arithmetic
    activations = calls.split("\nActivations\n")[1].split("~\n\n", 2)[1]
    assert "   relu\n" in activations and "   add\n" not in activations
