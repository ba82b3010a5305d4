"""``python -m agrad`` and the ``agrad`` command: ``info`` (what runs here) and ``demo``."""

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
    env = os.environ.get("AGRAD_BACKEND")
    lines.append(
        f"default backend: {agrad.current_backend().name}"
        + (f" (AGRAD_BACKEND={env})" if env else " (set AGRAD_BACKEND or call agrad.use to change)")
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agrad`` console script and ``python -m agrad``."""
    parser = argparse.ArgumentParser(prog="agrad", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="versions, and which backends are usable here and why")
    commands.add_parser(
        "demo", help="train an MLP on the spiral data set (options: agrad demo --help)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        from agrad import demo

        return demo.main(argv[1:])
    args = parser.parse_args(argv)
    if args.command in (None, "info"):
        print("\n".join(info_lines()))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
