"""kdjax's compiled programs: ``jax.jit`` with the XLA options that make their compilation quick.

kdjax's programs are many small element-wise kernels (Gaussian averages of proximal maps inside
fixed-point loops).  XLA's CPU fusion emitters compile such programs about twice as slowly as its
older loop emitters (benchmarks/results_cold.md), so by default every kdjax program
is compiled with ``xla_cpu_use_fusion_emitters = False``: a per-program compile option, not a
global setting (the caller's own programs are untouched).  Other backends ignore it.  The price
is run time: a compiled solve runs about 1.5x slower (benchmarks/results_cold.md), so a program
called with ``config=SolverConfig(fast_compile=False)`` is compiled with XLA's defaults (long
sweeps and optimisations).  Whether this JAX/XLA accepts the option is tested once, at the first
compilation; where it does not, the programs are compiled with XLA's defaults.

JAX takes per-program options only where the program is compiled on its own: a call with
concrete arguments or under ``jax.vmap`` / ``jax.jvp``.  Where the call is staged into a larger
program (under ``jax.grad``'s linearisation or a user's ``jit``), JAX refuses them; the program is
then the plain ``jax.jit`` and compiles with the caller's options.
"""

from __future__ import annotations

import functools

import jax

try:  # the transformations that compile an inner jit on its own (not staged); private names, hence the guard
    from jax._src.interpreters.ad import JVPTracer
    from jax._src.interpreters.batching import BatchTracer

    _UNSTAGED = (BatchTracer, JVPTracer)
except ImportError:  # pragma: no cover - then every traced call takes the plain jit
    _UNSTAGED = ()

FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def compiler_options() -> dict | None:
    """``FAST_COMPILE`` if this JAX/XLA accepts it, else ``None`` (XLA's defaults)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=FAST_COMPILE).lower(1.0).compile()
    except Exception:  # an older jax.jit without compiler_options, or an XLA without the option
        return None
    return FAST_COMPILE


class _Program:
    """``fun`` compiled by ``jax.jit``: with ``compiler_options()`` where JAX takes them, plainly
    where the call is staged into a larger program (module docstring)."""

    def __init__(self, fun, jit_kwargs):
        self._fun, self._kwargs, self._jitted = fun, jit_kwargs, None
        self.staged = jax.jit(fun, **jit_kwargs)
        functools.update_wrapper(self, fun)

    @property
    def jitted(self):
        if self._jitted is None:
            options = compiler_options()
            self._jitted = jax.jit(self._fun, compiler_options=options, **self._kwargs) if options else self.staged
        return self._jitted

    def __call__(self, *args, **kwargs):
        if not getattr(kwargs.get("config"), "fast_compile", True):  # SolverConfig(fast_compile=False)
            return self.staged(*args, **kwargs)
        tracers = [x for x in jax.tree_util.tree_leaves((args, kwargs)) if isinstance(x, jax.core.Tracer)]
        if self.jitted is self.staged or not all(isinstance(x, _UNSTAGED) for x in tracers):
            return self.staged(*args, **kwargs)
        try:  # (a vmap or jvp may still sit inside a user's jit)
            return self.jitted(*args, **kwargs)
        except ValueError as error:  # staged: JAX refuses per-program options there
            if "compiler_options" not in str(error):
                raise
            return self.staged(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self.jitted.lower(*args, **kwargs)


def jit(fun=None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` compiled with kdjax's options (module docstring); a decorator,
    with or without arguments."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _Program(fun, jit_kwargs)
