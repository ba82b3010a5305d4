"""Sphinx configuration for agrad's documentation (``nox -s docs``).

Choices, and why:

- **napoleon** reads the numpydoc docstring format (Parameters / Returns / Raises / Examples) and
  ships inside Sphinx, so the build needs no extra package for it; it also renders the one-line
  docstrings agrad still has in places without complaining, which matters with warnings as errors.
- **furo**: a maintained, accessible theme whose wheel carries its compiled assets, so the build
  is offline once the packages in ``docs/requirements.txt`` are installed.
- **MyST** for the guides: they are Markdown, like the README and ``benchmarks/README.md``.
- No intersphinx: it would fetch inventories over the network at build time.

The API reference pages are written by :func:`write_api_pages` when the build starts, from each
module's ``__all__`` (or, for a module without one, the public names it defines), so a new public
name is documented without touching ``docs/``; :func:`check_reference_complete` fails the build
when a listed name did not make it into the reference.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import agrad  # noqa: E402

project = "agrad"
author = "the agrad developers"
copyright = "2026, the agrad developers"  # noqa: A001  (Sphinx's name)
release = version = agrad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
# autosummary's own class template adds a second, bare entry for __init__
templates_path = ["_templates"]

html_theme = "furo"
html_title = f"agrad {release}"

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # no "Return type: None" on every method
autodoc_typehints_format = "short"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Several public names are re-exported (``agrad.Variable`` is ``agrad.core.Variable``); a type in a
# docstring that could link to either would otherwise warn "more than one target found".
suppress_warnings = ["ref.python"]

#: the modules of the reference, in the order of its table of contents
API_MODULES = [
    "agrad",
    "agrad.functions",
    "agrad.func",
    "agrad.layers",
    "agrad.models",
    "agrad.optimizers",
    "agrad.datasets",
    "agrad.dataloaders",
    "agrad.transforms",
    "agrad.utils",
    "agrad.cuda",
    "agrad.config",
    "agrad.backends",
    "agrad.distributed",
    "agrad.ops",
    "agrad.core",
    "agrad.anomaly",
    "agrad.amp",
    "agrad.tracing",
]


#: packages whose reference page groups its names by the submodule defining each (its *kind*),
#: with the ``Function`` nodes apart from the functions users call; headings in this order, a
#: submodule not listed here gets its own name as heading, after these
GROUPED_MODULES = {
    "agrad.functions": {
        "arithmetic": "Arithmetic",
        "elementwise": "Elementwise math",
        "activation": "Activations",
        "loss": "Losses and metrics",
        "reduction": "Reductions",
        "shape": "Shapes",
        "indexing": "Indexing",
        "linalg": "Linear algebra",
        "conv": "Convolution and pooling",
        "regularization": "Dropout and normalisation",
        "casting": "Casting",
        "_axes": "Errors",
    },
}
_NODES_INTRO = (
    "Each function above adds one of these nodes to the graph (``y.creator``). They are public "
    "for ``isinstance`` checks, for subclassing and for DeZero code that calls them directly "
    "(``Exp()(x)``); everyday code calls the functions."
)


def public_names(module_name: str) -> list[str]:
    """The public names of ``module_name``: its ``__all__``, else the names defined in it (or in
    its submodules, for a package such as ``agrad.functions``). Submodules are left out: each
    documented one has its own page."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and _defined_in(value, module_name)
        ]
    return [name for name in names if not inspect.ismodule(getattr(module, name))]


def _defined_in(value: Any, module_name: str) -> bool:
    home = str(getattr(value, "__module__", ""))
    return not inspect.ismodule(value) and (
        home == module_name or home.startswith(module_name + ".")
    )


def _home(value: Any) -> str | None:
    """``module.qualname`` where ``value`` is defined, if it is a class or function."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def plan_reference() -> dict[str, tuple[list[str], dict[str, str]]]:
    """Per module: the names it documents, and the names it only links to (name -> target).

    A class or function defined in a module the reference does not cover (``Backend`` lives in
    ``agrad.backends._base``) is documented under the first public name met and linked to from
    the others: Sphinx refuses two descriptions of one object that are both aliases.
    """
    first_alias: dict[str, str] = {}
    plan: dict[str, tuple[list[str], dict[str, str]]] = {}
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        documented: list[str] = []
        linked: dict[str, str] = {}
        for name in public_names(module_name):
            value = getattr(module, name)
            home = _home(value)
            if home is None or value.__module__ in API_MODULES:
                documented.append(name)
            elif home in first_alias:
                linked[name] = first_alias[home]
            else:
                first_alias[home] = f"{module_name}.{name}"
                documented.append(name)
        plan[module_name] = (documented, linked)
    return plan


def _page(module_name: str, documented: list[str], linked: dict[str, str]) -> str:
    module = importlib.import_module(module_name)
    submodules = [
        f"{module_name}.{name}"
        for name in getattr(module, "__all__", [])
        if inspect.ismodule(getattr(module, name))
    ]
    lines = [
        f"``{module_name}``",
        "=" * (len(module_name) + 4),
        "",
        f".. automodule:: {module_name}",
        "   :no-members:",
        "",
    ]
    if submodules:
        lines += ["Submodules: " + ", ".join(f":mod:`{name}`" for name in submodules) + ".", ""]
    lines += [f".. currentmodule:: {module_name}", ""]
    if module_name in GROUPED_MODULES:
        lines += _grouped(module, documented, GROUPED_MODULES[module_name])
    else:
        lines += _autosummary(documented)
    if linked:
        lines += ["", "Also here, documented under another name:", ""]
        lines += [f"- ``{name}``: :obj:`{target}`" for name, target in sorted(linked.items())]
    return "\n".join(lines) + "\n"


def _autosummary(names: list[str]) -> list[str]:
    lines = [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
    return lines + [f"   {name}" for name in sorted(names, key=str.lower)] + [""]


def _heading(title: str, underline: str) -> list[str]:
    return [title, underline * len(title), ""]


def _grouped(module: Any, names: list[str], titles: dict[str, str]) -> list[str]:
    """Sections by kind (the defining submodule), the functions first and the nodes apart."""
    from agrad.core import Function

    calls: dict[str, list[str]] = {}
    nodes: dict[str, list[str]] = {}
    for name in names:
        value = getattr(module, name)
        kind = str(getattr(value, "__module__", "")).rsplit(".", 1)[-1]
        is_node = inspect.isclass(value) and issubclass(value, Function)
        (nodes if is_node else calls).setdefault(kind, []).append(name)

    def order(kinds: dict[str, list[str]]) -> list[str]:
        known = [kind for kind in titles if kind in kinds]
        return known + sorted(kind for kind in kinds if kind not in titles)

    lines = _heading("Functions", "-")
    for kind in order(calls):
        lines += _heading(titles.get(kind, kind.strip("_").capitalize()), "~")
        lines += _autosummary(calls[kind])
    if nodes:
        lines += [*_heading("Function nodes", "-"), _NODES_INTRO, ""]
        for kind in order(nodes):
            title = titles.get(kind, kind.strip("_").capitalize())
            lines += _heading(f"{title} (nodes)", "~")
            lines += _autosummary(nodes[kind])
    return lines


def _index() -> str:
    lines = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    return "\n".join(lines + [f"   {name}" for name in API_MODULES]) + "\n"


def write_api_pages() -> None:
    """``api/index.rst`` and one ``api/<module>.rst`` per module of :data:`API_MODULES`.

    A file is rewritten only when its text changed, so Sphinx rebuilds only what did.
    """
    plan = plan_reference()
    pages = {"index": _index()} | {name: _page(name, *plan[name]) for name in API_MODULES}
    (DOCS / "api").mkdir(exist_ok=True)
    # autosummary writes a page per name but never deletes one: drop those of names now gone
    wanted = {f"{m}.{name}" for m, (documented, _) in plan.items() for name in documented}
    for page in (DOCS / "api" / "generated").glob("*.rst"):
        if page.stem not in wanted:
            page.unlink()
    for stem, text in pages.items():
        path = DOCS / "api" / f"{stem}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def check_reference_complete(app: Any, exception: Exception | None) -> None:
    """Fail the build when some public name of :data:`API_MODULES` is not in the reference."""
    if exception is not None:
        return
    documented = set(app.env.domaindata["py"]["objects"])
    plan = plan_reference()
    missing = [
        f"{module_name}.{name}"
        for module_name in API_MODULES
        for name in public_names(module_name)
        if f"{module_name}.{name}" not in documented
        and plan[module_name][1].get(name) not in documented
    ]
    if missing:
        raise RuntimeError(f"public names missing from the API reference: {', '.join(missing)}")


def escape_substitutions(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Show ``|x|`` in a docstring as written: reST would read it as an undefined substitution."""
    lines[:] = [_SUBSTITUTION.sub(r"\\|\1\\|", line) for line in lines]


_SUBSTITUTION = re.compile(r"(?<![\\`])\|(\w[^|`]*)\|(?!`)")


def setup(app: Any) -> None:
    # before Sphinx looks for source files, so that a clean checkout builds in one pass
    app.connect("config-inited", lambda app, config: write_api_pages())
    app.connect("autodoc-process-docstring", escape_substitutions)
    app.connect("build-finished", check_reference_complete)
