"""kdjax's compiled programs: ``jax.jit`` with the XLA options that make their compilation quick.

kdjax's programs are many small element-wise kernels (Gaussian averages of proximal maps inside
fixed-point loops).  XLA's CPU fusion emitters compile such programs about twice as slowly as its
older loop emitters (benchmarks/results_cold.md), so by default every kdjax program
is compiled with ``xla_cpu_use_fusion_emitters = False``: a per-program compile option, not a
global setting (the caller's own programs are untouched).  Other backends ignore it.  The price
is run time: a compiled solve runs about 1.5x slower (benchmarks/results_cold.md), so a program
called with ``config=SolverConfig(fast_compile=False)`` is compiled with XLA's defaults (long
sweeps and optimisations).  Whether this JAX/XLA accepts the option shows at the first compilation
(no probe is compiled); where it does not, that program and all later ones are compiled with
XLA's defaults.

JAX takes per-program options only where the program is compiled on its own: a call with
concrete arguments or under ``jax.vmap`` / ``jax.jvp``.  Where the call is staged into a larger
program (a user's ``jit``), JAX refuses them; the program is then the plain ``jax.jit`` and
compiles with the caller's options.

Under ``jax.grad`` (reverse mode: JAX linearises, then transposes) JAX would stage the program's
tangent part, so where the values are concrete (``jax.grad`` outside ``jit``, also under ``vmap``)
a kdjax program is linearised densely instead: one program, compiled on its own with the options,
returns the outputs and their Jacobian with respect to the differentiated inputs (forward mode,
one column per differentiated scalar: a handful for kdjax's scalar parameters), and the tangent is
the product of that matrix with the input tangents, a small program of its own.  Under a user's
``jit`` JAX's own linearisation is kept (it compiles to less there).

Under ``jax.vmap`` of concrete values on a CPU, a program runs point by point: the compiled
program of one point is called for each (a ``custom_vmap`` rule), so no batched program is compiled,
and each point's numbers are those of a single call.  Each point's parameters (the fields of
``kdjax.Mixture``, ``Teacher``, ``Student``) reach it as the Python floats of a plain call, so the
points run the very programs that plain calls compiled.  (A CPU runs a batch's fixed-point loops one
after the other anyway; sweeps compile their own batched programs, ``kdjax.sweep``.)  Under a
user's ``jit``, or on other backends, ``vmap`` batches the program as usual.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.flatten_util import ravel_pytree

from ._params import Params, at_top_level
from ._store import Store

try:  # the transformations that compile an inner jit on its own (not staged); private names, hence the guard
    from jax._src.interpreters.ad import JVPTracer
    from jax._src.interpreters.batching import BatchTracer

    _UNSTAGED = (BatchTracer, JVPTracer)
except ImportError:  # pragma: no cover - then every traced call takes the plain jit
    _UNSTAGED = ()
try:  # reverse mode's linearisation (jax.grad, jax.vjp): linearised densely (module docstring)
    from jax._src.interpreters.ad import LinearizeTracer
except ImportError:  # pragma: no cover - then reverse mode takes the plain jit
    LinearizeTracer = ()

FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}
_REFUSED = []  # not empty once this JAX/XLA refused the option: every program then takes XLA's defaults


def compiler_options() -> dict | None:
    """``FAST_COMPILE``, or ``None`` (XLA's defaults) once this JAX/XLA refused it: the first
    compilation tells, no probe is compiled."""
    return None if _REFUSED else FAST_COMPILE


class _Program:
    """``fun`` compiled by ``jax.jit``: with ``compiler_options()`` where JAX takes them, plainly
    where the call is staged into a larger program (module docstring)."""

    def __init__(self, fun, jit_kwargs):
        self._fun, self._kwargs, self._jitted, self._dense = fun, jit_kwargs, None, None
        self.staged = jax.jit(fun, **jit_kwargs)
        self._static = tuple(jit_kwargs.get("static_argnames", ()))
        self._store = Store(fun, {} if compiler_options() is None else {"compiler_options": FAST_COMPILE})
        functools.update_wrapper(self, fun)

    @property
    def jitted(self):
        if _REFUSED:
            return self.staged
        if self._jitted is None:
            try:
                self._jitted = jax.jit(self._fun, compiler_options=FAST_COMPILE, **self._kwargs)
            except TypeError:  # pragma: no cover - a jax.jit without compiler_options
                _REFUSED.append(True)
                return self.staged
        return self._jitted

    def __call__(self, *args, **kwargs):
        if not getattr(kwargs.get("config"), "fast_compile", True):  # SolverConfig(fast_compile=False)
            return self.staged(*args, **kwargs)
        if at_top_level():
            return self._compiled(args, kwargs)
        tracers = [x for x in jax.tree_util.tree_leaves((args, kwargs)) if isinstance(x, jax.core.Tracer)]
        if self.jitted is self.staged:
            return self.staged(*args, **kwargs)
        if tracers and _UNSTAGED and jax.default_backend() == "cpu" and all(
                isinstance(x, BatchTracer) and not isinstance(getattr(x, "val", x), jax.core.Tracer) for x in tracers):
            return self._per_point(args, kwargs)
        linearized = [x for x in tracers if isinstance(x, LinearizeTracer)]
        if linearized and all(_compiles_alone(getattr(x, "primal", None)) for x in linearized):
            return self._linearized(args, kwargs)
        if not all(isinstance(x, _UNSTAGED) for x in tracers):
            return self.staged(*args, **kwargs)
        return self._compiled(args, kwargs)

    def _compiled(self, args, kwargs):
        """The call compiled on its own with the option, or plainly where JAX or XLA refuse it;
        at the top level with JAX's persistent cache on, through its stored program (kdjax._store)."""
        try:
            if at_top_level() and self._store.enabled():
                out = self._store.call(args, *self._split_static(kwargs))
                if out is not None:
                    return out
            return self.jitted(*args, **kwargs)
        except ValueError as error:  # staged (a vmap or jvp inside a user's jit): JAX refuses the option there
            if "compiler_options" not in str(error):
                raise
        except RuntimeError as error:  # an XLA without the option: "No such compile option"
            if "compile option" not in str(error):
                raise
            _REFUSED.append(True)
        return self.staged(*args, **kwargs)

    def _per_point(self, args, kwargs):
        """The call under ``jax.vmap`` of concrete values on a CPU: the compiled program, point by point."""
        kwargs, static = self._split_static(kwargs)

        @custom_vmap
        def batched(args, kwargs):  # (only its batching rule runs)
            return self._compiled(args, {**kwargs, **static})

        @batched.def_vmap
        def per_point(size, in_batched, args, kwargs):
            if size == 0:
                out = jax.vmap(lambda a, k: self._fun(*a, **k, **static), in_axes=_axes(in_batched))(args, kwargs)
                return out, jax.tree.map(lambda _: True, out)
            leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
            flags = jax.tree_util.tree_leaves(in_batched)
            points = [_points(x, p) if b else None for x, b, p in zip(leaves, flags, _parameters((args, kwargs)))]
            outs = []
            for i in range(size):
                a, k = jax.tree_util.tree_unflatten(tree, [p[i] if b else x for x, b, p in zip(leaves, flags, points)])
                outs.append(self._compiled(a, {**k, **static}))
            out = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
            return out, jax.tree.map(lambda _: True, out)

        return batched(args, kwargs)

    def _linearized(self, args, kwargs):
        """The call under reverse mode: a ``custom_jvp`` whose rule runs ``dense`` (module docstring)."""
        kwargs, static = self._split_static(kwargs)
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        differentiated = tuple(isinstance(x, LinearizeTracer) and _inexact(x) for x in leaves)
        if self._dense is None:
            self._dense = jit(_outputs_and_jacobian, static_argnames=("fun", "tree", "differentiated", "static"))
        call = functools.partial(self._dense, fun=self._fun, tree=tree, differentiated=differentiated,
                                 static=tuple(static.items()))

        @jax.custom_jvp
        def linearized(*leaves):
            return call(*leaves)[0]

        @linearized.defjvp
        def linearized_jvp(primals, tangents):
            out, jacobian = call(*primals)
            return out, _tangents(out, jacobian, [t for t, d in zip(tangents, differentiated) if d])

        return linearized(*leaves)

    def _split_static(self, kwargs) -> tuple:
        """``(traced keyword arguments, static ones)``: the static ones stay out of the rules' pytrees."""
        return ({k: v for k, v in kwargs.items() if k not in self._static},
                {k: v for k, v in kwargs.items() if k in self._static})

    def lower(self, *args, **kwargs):
        return self.jitted.lower(*args, **kwargs)


def jit(fun=None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` compiled with kdjax's options (module docstring); a decorator,
    with or without arguments."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _Program(fun, jit_kwargs)


def concrete_points(x):
    """``x``'s value where it is known here: ``x`` itself where concrete, the batch of values under
    ``jax.vmap`` of concrete values (each point then runs on its own, module docstring); else ``None``."""
    if not isinstance(x, jax.core.Tracer):
        return x
    value = getattr(x, "val", None) if _UNSTAGED and isinstance(x, BatchTracer) else None
    return None if value is None or isinstance(value, jax.core.Tracer) else value


def _parameters(tree) -> list:
    """Per leaf of ``tree``: whether it is a field of a kdjax parameter object (``kdjax.Mixture``,
    ``Teacher``, ``Student``), which a plain call receives as a Python number."""
    return jax.tree_util.tree_leaves(jax.tree.map(
        lambda x: jax.tree.map(lambda _: isinstance(x, Params), x), tree, is_leaf=lambda x: isinstance(x, Params)))


def _points(x, parameter: bool) -> list:
    """The points of a batched leaf, one per index along its first axis.  A parameter's float scalars
    of the default dtype are Python floats, as in a plain call (so each point runs the program that
    a plain call compiled, not one for strongly typed scalars); other leaves are array slices."""
    if parameter and np.ndim(x) == 1 and jnp.result_type(x) == jnp.result_type(float):
        return [float(v) for v in np.asarray(x)]
    return [x[i] for i in range(np.shape(x)[0])]


def _axes(in_batched):
    """``vmap``'s ``in_axes`` from ``custom_vmap``'s batched flags: 0 where batched, else ``None``."""
    return jax.tree.map(lambda b: 0 if b else None, in_batched)


def _compiles_alone(value) -> bool:
    """Whether a call with ``value`` compiles on its own (a concrete value, or traced by ``vmap``/``jvp``)."""
    return not isinstance(value, jax.core.Tracer) or isinstance(value, _UNSTAGED)


def _outputs_and_jacobian(*leaves, fun, tree, differentiated, static):
    """``fun``'s output leaves at ``leaves`` and the Jacobian of its inexact ones (raveled) with
    respect to the ``differentiated`` leaves (raveled): forward mode, one column per scalar."""
    chosen = [x for x, d in zip(leaves, differentiated) if d]
    flat, unravel = ravel_pytree(chosen)

    def outputs(v):
        it = iter(unravel(v))
        full = [next(it) if d else x for x, d in zip(leaves, differentiated)]
        args, kwargs = jax.tree_util.tree_unflatten(tree, full)
        out = fun(*args, **kwargs, **dict(static))
        return ravel_pytree([o for o in jax.tree_util.tree_leaves(out) if _inexact(o)])[0], out

    jacobian, out = jax.jacfwd(outputs, has_aux=True)(flat)
    return out, jacobian


def _inexact(x):
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


@jax.jit
def _tangents(out, jacobian, tangents):
    """The output tangents ``jacobian . tangents`` (zero for the outputs that are not inexact)."""
    flat = ravel_pytree([jnp.asarray(t) for t in tangents])[0]
    leaves, tree = jax.tree_util.tree_flatten(out)
    _, unravel = ravel_pytree([o for o in leaves if _inexact(o)])
    it = iter(unravel(jacobian @ flat.astype(jacobian.dtype)))
    return jax.tree_util.tree_unflatten(
        tree, [next(it) if _inexact(o) else np.zeros(np.shape(o), jax.dtypes.float0) for o in leaves])
