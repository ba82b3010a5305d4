"""``agrad.jit``: trace a step once, replay it as a flat array program.

:mod:`agrad.tracing.tracer` records (traced arrays, the recording namespace and backend),
:mod:`agrad.tracing.state` finds what a function reads and writes besides its arguments,
:mod:`agrad.tracing.program` runs a trace as a program (interpreted, then generated Python), and
:mod:`agrad.tracing.jitted` ties them into :func:`jit`.
"""

from agrad.tracing.jitted import Jitted, JitWarning, jit
from agrad.tracing.tracer import TraceError

__all__ = ["JitWarning", "Jitted", "TraceError", "jit"]
