"""``python -m agrad`` and the ``agrad`` command: ``info`` (what runs here) and ``demo``.

The help texts are plain text (no reStructuredText markup): argparse prints them as they are.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import platform
import sys

import agrad

# the distributions that provide each backend's array library (CuPy has one per CUDA version)
_DISTRIBUTIONS = {
    "numpy": ["numpy"],
    "cupy": ["cupy", "cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x"],
    "array_api_strict": ["array-api-strict"],
    "torch": ["torch"],
    "jax": ["jax"],
    "dask": ["dask"],
}


def _version(names: list[str]) -> str | None:
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def info_lines() -> list[str]:
    """The report of ``agrad info``, one line per entry."""
    lines = [
        f"agrad {agrad.__version__} ({os.path.dirname(agrad.__file__)})",
        f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}",
    ]
    for name in ("array-api-compat", "tqdm"):
        lines.append(_version([name]) or f"{name}: not installed")
    lines.append("backends:")
    for name in agrad.known_backends():
        backend = agrad.get_backend(name)
        library = _version(_DISTRIBUTIONS.get(name, [name])) or "not installed"
        usable, why = backend.probe()
        if usable:
            lines.append(f"  {name:<17} usable      {library}")
            try:
                devices = backend.devices()
            except Exception as exc:  # a driver hiccup should not hide the rest of the report
                devices = [f"(could not list devices: {type(exc).__name__}: {exc})"]
            lines.extend(f"  {'':<17}   {device}" for device in devices)
        else:
            lines.append(f"  {name:<17} not usable  {library}: {why}")
            hint = backend.install_hint()
            if hint:
                lines.append(f"  {'':<17}   to use it: {hint}")
    env = os.environ.get("AGRAD_BACKEND")
    lines.append(
        f"default backend: {agrad.current_backend().name}"
        + (f" (AGRAD_BACKEND={env})" if env else " (set AGRAD_BACKEND or call agrad.use to change)")
    )
    return lines


_DESCRIPTION = "agrad: DeZero's define-by-run autograd on any Array API backend."
_EPILOG = "Each command has its own help: agrad info --help, agrad demo --help."


def build_parser(prog: str = "agrad") -> argparse.ArgumentParser:
    """The parser of the ``agrad`` command, with ``info`` and ``demo`` (its options from
    :func:`agrad.demo.add_arguments`) as subcommands."""
    from agrad import demo

    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"agrad {agrad.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{info,demo}")
    commands.add_parser(
        "info",
        help="versions, and which backends are usable here (how to install the others)",
        description="Versions, and which backends are usable here (how to install the others).",
    )
    demo.add_arguments(
        commands.add_parser("demo", help="train an MLP on the spiral data set", **demo.PARSER)
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agrad`` console script and ``python -m agrad``.

    Without a command it prints the help; bad options end in argparse's usage error (exit 2).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command == "info":
        print("\n".join(info_lines()))
        return 0
    if args.command == "demo":
        from agrad import demo

        return demo.run(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
