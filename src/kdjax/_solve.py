"""The one fixed-point driver of kdjax (docs/theory.md, Sec. 4).

A state ``x`` (any pytree of scalar order parameters) solves ``x = F(x, args)``.  One
``while_loop`` does the whole solve; every step evaluates the map once, together with its
Jacobian (forward mode, the map traced once), at one candidate point:

* the candidate is accepted when it is admissible (``valid``, finite) and, if it came from a
  Newton step, when it lowers the undamped residual ``|F(x) - x|``; a rejected Newton step sends
  the iteration back to the last accepted point for damped steps, and Newton is tried again
  after a back-off that doubles with each failure (1, 2, 4, ... damped steps);
* from the accepted point the next candidate is the Newton step ``x + (I - J)^-1 (F(x) - x)``
  (where the relative residual is below 1 until a Newton step failed, below 0.1 after, or where
  the damped iteration stalls) or the damped step ``x + eta (F(x) - x)``, whose weight ``eta``
  is halved whenever the update reverses direction (an oscillating mode) and recovers by 20% per step otherwise;
* the test reads the undamped residual at the evaluated point, ``|F_i(x) - x_i| <= tol (1 + |x_i|)``
  for every component, so damping never hides a residual, and the returned point is the one
  tested (or, after ``max_steps``, the best accepted one).

The solution is differentiable in ``args`` by the implicit function theorem,
``dx = (I - J)^-1 dF/dargs . dargs``, with the Jacobian ``J`` the loop computed at the solution:
a ``custom_jvp`` (forward mode; reverse mode by transposition), nothing unrolled.  Failure is a
result code (``RESULTS``), never raised inside ``jit``/``vmap`` by the driver; the public solves
raise on it when ``throw=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import sequential_vmap
from jax.flatten_util import ravel_pytree

from ._params import SolverConfig, is_concrete, primal  # noqa: F401  (re-exported)


class RESULTS(eqx.Enumeration):
    """Result codes of every kdjax solve (``result`` field of a solution; 0 is success)."""

    successful = ""
    max_steps = ("the fixed point did not converge within SolverConfig.max_steps iterations "
                 "(raise max_steps or lower damping)")
    nonfinite = "the fixed-point iteration reached a non-finite state"
    inadmissible = "the fixed point lies outside the admissible states (a response V <= 0)"
    no_finite_minimiser = ("the objective has no finite minimiser in this regime "
                           "(kdjax.has_finite_minimiser; the eager check names it)")
    teacher_failed = "an earlier generation (the teacher) did not solve, so the soft labels are undefined"


class FixedPoint(eqx.Module):
    """Solution ``x`` (a state pytree) with its undamped residual ``max |F(x) - x|``, the
    iterations used and its result code."""

    x: Any
    residual: jax.Array
    iterations: jax.Array
    result: RESULTS

    @property
    def converged(self):
        return self.result == RESULTS.successful


_DAMPED, _NEWTON = 0, 1
_MAX_BACKOFF = 64
_STALL = 32  # damped steps without a new best point after which Newton is tried anyway
_WINDOW = 16  # ... or when the best residual did not halve over such a window (slow convergence)
_NEAR = 1e-1  # scaled residual below which Newton is tried: J is computed at every step anyway
_NEAR_FIRST = 1.0  # ... and until a Newton step first failed (most starts are within Newton's basin)


class _Loop(eqx.Module):
    """Carry of the loop: the candidate ``x`` to evaluate next, how it was made, the last accepted
    point with its map value and Jacobian, and the damping / back-off bookkeeping."""

    k: jax.Array
    x: jax.Array
    kind: jax.Array
    base: jax.Array
    F_base: jax.Array
    J_base: jax.Array
    near: jax.Array  # the accepted point's scaled residual is below near_below: Newton's basin
    near_below: jax.Array  # _NEAR_FIRST until a Newton step failed, then _NEAR
    k_best: jax.Array  # the step that last improved the best point
    res_mark: jax.Array  # the best scaled residual _WINDOW steps ago
    slow: jax.Array  # it did not halve over the last window
    eta: jax.Array
    last_step: jax.Array
    wait: jax.Array
    backoff: jax.Array
    tau: jax.Array
    done: jax.Array
    x_out: jax.Array
    J_out: jax.Array
    res_out: jax.Array
    gap_out: jax.Array


# The loop carries ``_Loop`` packed into four arrays (counters and flags, scalars, vectors,
# matrices): XLA then updates each group in one kernel rather than one per field.
_INTS = ("k", "kind", "k_best", "wait", "backoff")
_FLAGS = ("near", "slow", "done")
_SCALARS = ("near_below", "res_mark", "eta", "tau", "res_out", "gap_out")
_VECTORS = ("x", "base", "F_base", "last_step", "x_out")
_MATRICES = ("J_base", "J_out")


def _running(c: _Loop, max_steps: int, active):
    """Whether the loop goes on: not converged, steps left, and ``active`` (a generation whose
    objective has a finite minimiser: there is no fixed point to look for otherwise)."""
    return ~c.done & (c.k < max_steps) & active


def _pack(c: _Loop) -> tuple:
    ints = jnp.stack([getattr(c, f) for f in _INTS] + [getattr(c, f).astype(c.k.dtype) for f in _FLAGS])
    return (ints, jnp.stack([getattr(c, f) for f in _SCALARS]), jnp.stack([getattr(c, f) for f in _VECTORS]),
            jnp.stack([getattr(c, f) for f in _MATRICES]))


def _unpack(p) -> _Loop:
    ints, scalars, vectors, matrices = p
    fields = {f: ints[i] for i, f in enumerate(_INTS)}
    fields.update({f: ints[len(_INTS) + i] != 0 for i, f in enumerate(_FLAGS)})
    fields.update({f: scalars[i] for i, f in enumerate(_SCALARS)})
    fields.update({f: vectors[i] for i, f in enumerate(_VECTORS)})
    fields.update({f: matrices[i] for i, f in enumerate(_MATRICES)})
    return _Loop(**fields)


def _scaled_residual(x, Fx, tol):
    return jnp.max(jnp.abs(Fx - x) / (tol + tol * jnp.abs(x)))


_UNROLLED_SOLVE = 4  # unknowns up to which the loop solves its Newton system by unrolled elimination


def _eliminate(A, b):
    """``A^-1 b`` by Gauss-Jordan elimination with partial pivoting, unrolled over the (static, small)
    size: XLA fuses it with the step, where LAPACK's solve is three kernels and a loop over the
    pivots.  For the loop's own steps only (the loop is never differentiated)."""
    n = A.shape[0]
    M = jnp.concatenate([A, b[:, None]], axis=1)
    rows = jnp.arange(n)
    for k in range(n):
        p = jnp.argmax(jnp.where(rows >= k, jnp.abs(M[:, k]), -1.0))
        row_k, row_p = M[k], jax.lax.dynamic_index_in_dim(M, p, keepdims=False)
        M = jnp.where((rows == k)[:, None], row_p, jnp.where((rows == p)[:, None], row_k, M))
        M = M - jnp.where(rows != k, M[:, k] / M[k, k], 0.0)[:, None] * M[k]
    return M[:, n] / jnp.diagonal(M)


def _newton_solve(J, rhs, read, solve=jnp.linalg.solve):
    """``(I - J)^-1 rhs`` where only the columns ``read`` of ``J`` are non-zero: the block of the
    components read, then the by-products (``dx_u = rhs_u + J_u,read dx_read``), so that large
    derivatives of the by-products never enter the pivoting of the block that is iterated."""
    if read is None:
        return solve(jnp.eye(J.shape[0], dtype=J.dtype) - J, rhs)
    J_read = J[:, read]
    dr = solve(jnp.eye(len(read), dtype=J.dtype) - J_read[read], rhs[read])
    return (rhs + J_read @ dr).at[read].set(dr, unique_indices=True)


def _linearise(fn, x, args, read):
    """``(F(x), J(x))``: the map and its Jacobian in ``x`` (forward mode, the map traced once); only
    the columns ``read`` are computed (the others are zero), all of them where ``read`` is ``None``."""
    if read is None:
        J, Fx = jax.jacfwd(lambda y: (fn(y, args),) * 2, has_aux=True)(x)
        return Fx, J
    J_read, Fx = jax.jacfwd(lambda y: (fn(x.at[read].set(y, unique_indices=True), args),) * 2,
                            has_aux=True)(x[read])
    n = x.shape[0]
    return Fx, jnp.zeros((n, n), J_read.dtype).at[:, read].set(J_read, unique_indices=True)


def _iterate(fn, ok, x0, args, config: SolverConfig, read=None, active=True):
    """The loop of the module docstring on flat vectors: ``(x, J(x), scaled residual, residual, steps)``;
    no step where ``active`` is false.

    ``read``: the (static) indices of the components the map reads; the Jacobian's other columns
    are zero and are not computed (``None``: all).  The others are by-products: the test reads
    the components read, and the returned point carries the by-products computed at it, ``F(x)``."""
    n, dtype = x0.shape[0], x0.dtype
    tested = (lambda v: v) if read is None else (lambda v: v[read])
    is_read = np.ones(n, bool) if read is None else np.isin(np.arange(n), read)
    eye = jnp.eye(n, dtype=dtype)
    tol, damping = config.tol, config.damping
    solve = _eliminate if (n if read is None else len(read)) <= _UNROLLED_SOLVE else jnp.linalg.solve

    def step(c: _Loop) -> _Loop:
        Fx, J = _linearise(fn, c.x, args, read)
        finite = jnp.all(jnp.isfinite(Fx)) & jnp.all(jnp.isfinite(c.x))  # (a non-finite J only rules out Newton)
        admissible = finite & ok(c.x)
        res = jnp.where(admissible, _scaled_residual(tested(c.x), tested(Fx), tol), jnp.inf)
        done = admissible & (res <= 1.0)
        # A Newton candidate must improve on the best point so far (so Newton steps cannot cycle
        # between basins of a non-smooth map); damped steps follow the iteration.
        accept = admissible & ((c.kind == _DAMPED) | (res < c.res_out))
        base = jnp.where(accept, c.x, c.base)
        F_base = jnp.where(accept, Fx, c.F_base)
        J_base = jnp.where(accept, J, c.J_base)
        # A rejected Newton step is retried at half its length (a solution on the edge of the
        # admissible states, e.g. a response V -> 0, is approached by halving the distance), down
        # to 1/64 of it; then damped steps, and Newton again after a back-off.
        newton_rejected = ~accept & (c.kind == _NEWTON)
        # an accepted Newton step lets the next one be twice as long (back to the full step)
        tau = jnp.where(newton_rejected, 0.5 * c.tau, jnp.where(c.kind == _NEWTON, jnp.minimum(2.0 * c.tau, 1.0), 1.0))
        # (a first try from further out gives up sooner: a start outside Newton's basin costs 3 evaluations)
        newton_failed = newton_rejected & (tau < jnp.where(c.near_below > _NEAR, 0.5, 1.0 / 64))
        tau = jnp.where(newton_failed, 1.0, tau)
        near_below = jnp.where(newton_failed, _NEAR, c.near_below)
        near = jnp.where(accept, res * tol <= near_below, c.near)
        damped_failed = ~accept & (c.kind == _DAMPED)
        backoff = jnp.where(newton_failed, jnp.minimum(2 * c.backoff, _MAX_BACKOFF),
                            jnp.where(accept & (c.kind == _NEWTON), 1, c.backoff))
        wait = jnp.where(newton_failed, backoff, jnp.maximum(c.wait - 1, 0))
        # next candidate from the accepted point; the update reverses when it points against the
        # damped step that led to this point (the step just taken, when it was accepted)
        last_step = jnp.where(accept & (c.kind == _DAMPED), c.x - c.base, c.last_step)
        delta = F_base - base
        scale = tol + tol * jnp.abs(base)
        reverses = jnp.sum(tested(delta / scale * last_step / scale)) < 0
        shrink = reverses | damped_failed
        eta = jnp.clip(jnp.where(shrink, 0.5, jnp.where(accept, 1.2, 1.0)) * c.eta, 1e-3 * damping, damping)
        dx = _newton_solve(J_base, delta, read, solve)
        # a trust region: no component moves by more than 1 + its size in one Newton step
        tau_eff = jnp.minimum(tau, jnp.min(tested((1.0 + jnp.abs(base)) / jnp.maximum(jnp.abs(dx), 1e-300))))
        newton = base + tau_eff * dx
        better = admissible & (res < c.res_out)
        k_best = jnp.where(better, c.k, c.k_best)
        # Newton where the damped iteration has settled, or where it no longer improves on its best
        stalled = c.k - k_best >= _STALL
        mark = (c.k % _WINDOW) == _WINDOW - 1
        res_best = jnp.where(better, res, c.res_out)
        slow = jnp.where(mark, res_best > 0.5 * c.res_mark, c.slow)
        res_mark = jnp.where(mark, res_best, c.res_mark)
        use_newton = (near | stalled | slow) & (wait == 0) & jnp.all(jnp.isfinite(newton)) & (tau_eff >= 1.0 / 64)
        x_next = jnp.where(use_newton, newton, base + eta * delta)
        return _Loop(
            k=c.k + 1, x=x_next, kind=jnp.where(use_newton, _NEWTON, _DAMPED), base=base, F_base=F_base,
            J_base=J_base, near=near, near_below=near_below,
            k_best=k_best, res_mark=res_mark, slow=slow, eta=eta, last_step=last_step,
            wait=wait, backoff=backoff, tau=tau, done=done,
            x_out=jnp.where(done | better, jnp.where(is_read, c.x, Fx), c.x_out),
            J_out=jnp.where(done | better, J, c.J_out),
            res_out=jnp.where(done | better, res, c.res_out),
            gap_out=jnp.where(done | better, jnp.max(jnp.abs(tested(Fx) - tested(c.x))), c.gap_out),
        )

    inf = jnp.asarray(jnp.inf, dtype)
    zeros = jnp.zeros_like(x0)
    init = _Loop(
        k=jnp.asarray(0), x=x0, kind=jnp.asarray(_DAMPED), base=x0, F_base=x0, J_base=eye, near=jnp.asarray(False),
        near_below=jnp.asarray(_NEAR_FIRST, dtype),
        k_best=jnp.asarray(0),
        res_mark=inf, slow=jnp.asarray(False),
        eta=jnp.asarray(damping, dtype), last_step=zeros, wait=jnp.asarray(0), backoff=jnp.asarray(1),
        tau=jnp.asarray(1.0, dtype),
        done=jnp.asarray(False), x_out=x0, J_out=eye, res_out=inf, gap_out=inf,
    )
    out = _unpack(jax.lax.while_loop(lambda p: _running(_unpack(p), config.max_steps, active),
                                     lambda p: _pack(step(_unpack(p))), _pack(init)))
    return out.x_out, out.J_out, out.res_out, out.gap_out, out.k


def solve_fixed_point(
    F: Callable[[Any, Any], Any], x0, args, config: SolverConfig,
    valid: Callable[[Any], jax.Array] = lambda x: jnp.asarray(True), unread=None, active=True,
) -> FixedPoint:
    """Solve ``x = F(x, args)`` for a state pytree ``x`` from the start ``x0``; differentiable in
    ``args`` (implicit, module docstring), not in ``x0``.

    ``unread``: ``None``, or a pytree of Python booleans like ``x0`` (one per leaf) marking the
    components that ``F`` computes but does not read (a generation's by-products, carried so that
    they are differentiable at the solution): their Jacobian columns are zero, not computed.

    ``valid(x)`` marks the admissible states (e.g. a positive response ``V``): the equations can
    have spurious roots outside, which Newton's method may find; such a root is never accepted
    and never reported successful.  ``result`` is ``successful`` when the undamped residual at
    the returned point is finite and within ``config.tol`` (mixed abs/rel scale) and the point is
    valid; otherwise ``nonfinite``, ``inadmissible`` or ``max_steps``.

    ``active``: a (traced) flag; where false the loop takes no step and the start is returned
    (``max_steps``): a caller that knows there is no fixed point to find (e.g. an objective without
    a finite minimiser) does not pay for ``max_steps`` iterations.
    """
    flat0, unravel = ravel_pytree(jax.lax.stop_gradient(x0))
    fn = lambda x, a: ravel_pytree(F(unravel(x), a))[0]
    ok = lambda x: jnp.asarray(valid(unravel(x)))

    read = None
    if unread is not None:
        sizes = [np.size(leaf) for leaf in jax.tree_util.tree_leaves(x0)]
        flags = np.repeat(np.asarray(jax.tree_util.tree_leaves(unread), bool), sizes)
        read = None if not flags.any() else np.flatnonzero(~flags)
    loop = lambda start, a, on: _iterate(fn, ok, start, a, config, read, on)
    if jax.default_backend() == "cpu":
        # Under vmap a CPU runs the batch's loops one after the other (lanes of a vectorised loop
        # would all wait for the slowest); this also keeps the compiled loop the unbatched one.
        loop = sequential_vmap(loop)

    @jax.custom_jvp
    def root(start, a, on):
        return loop(start, a, on)

    @jax.custom_jvp
    def jacobian_at(x, a, J):
        """``J``, the map's Jacobian at the solution the loop returned, as a function of
        ``(x, args)``: its derivative (second-order derivatives of the solution) differentiates
        the map's linearisation; first-order derivatives use the loop's ``J`` as it is."""
        return J

    @jacobian_at.defjvp
    def jacobian_at_jvp(primals, tangents):
        (x, a, J), (dx, da, _) = primals, tangents
        _, dJ = jax.jvp(lambda y, b: _linearise(fn, y, b, read)[1], (x, a), (dx, da))
        return J, dJ

    @root.defjvp
    def root_jvp(primals, tangents):
        (start, a, on), (_, da, _) = primals, tangents
        out = root(start, a, on)
        x = out[0]
        J = jacobian_at(x, a, out[1])
        # the map's linearisation in args is recomputed in a reverse pass rather than stored
        _, dF = jax.jvp(jax.checkpoint(lambda b: fn(x, b)), (a,), (da,))
        dx = _newton_solve(J, dF, read)
        zeros = [jnp.zeros_like(v) for v in out[1:4]]
        return out, (dx, *zeros, np.zeros(out[4].shape, jax.dtypes.float0))

    x, _, scaled, residual, iterations = root(flat0, args, jnp.asarray(active, bool))
    finite = jnp.all(jnp.isfinite(x))
    admissible = finite & ok(x)
    result = RESULTS.where(finite, RESULTS.successful, RESULTS.nonfinite)
    result = RESULTS.where(finite & ~admissible, RESULTS.inadmissible, result)
    result = RESULTS.where(admissible & ~(scaled <= 1.0), RESULTS.max_steps, result)
    return FixedPoint(x=unravel(x), residual=residual, iterations=iterations, result=result)


class SolveError(RuntimeError):
    """A solve with ``throw=True`` that did not succeed; ``.result`` holds its ``RESULTS`` code."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def message(result) -> str:
    """The text of a concrete ``RESULTS`` code."""
    return RESULTS[result]


def raise_if_failed(solution, what: str):
    """Raise ``SolveError`` naming ``what`` and the reason unless ``solution.result`` is successful.

    Concrete solutions get a message with the residual; traced ones raise at run time
    (``equinox`` runtime error with the code's text) and are returned unchanged otherwise.
    """
    result = solution.result
    if not is_concrete(result._value):
        return result.error_if(solution, result != RESULTS.successful)
    if np.asarray(result._value) != RESULTS.successful._value:
        detail = f" (residual {float(solution.residual):.3g})" if result == RESULTS.max_steps else ""
        raise SolveError(f"the {what} fixed point did not converge: {message(result)}{detail}", result)
    return solution
