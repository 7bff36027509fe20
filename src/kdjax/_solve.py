"""The one fixed-point driver of kdjax (optimistix), in one place.

A state ``x`` (a flat vector of order parameters) solves ``x = F(x, args)``.  The driver runs
a damped iteration ``x <- x + eta (F(x) - x)`` whose stopping test reads the *undamped*
residual ``|F(x) - x|`` (so damping never hides a large residual), then polishes the result
by Newton's method on ``F(x) - x``.  Derivatives with respect to ``args`` come from the
implicit function theorem at the solution (``optimistix.ImplicitAdjoint``): nothing is
unrolled.  The state is any pytree of scalars (a named ``TeacherState``/``StudentState``);
the driver works on its flat vector.  Failure is reported through a result code
(``RESULTS``), never raised inside ``jit``/``vmap`` by the driver itself: the public solves
raise on it when ``throw=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jax.flatten_util import ravel_pytree

from ._params import SolverConfig


class RESULTS(eqx.Enumeration):
    """Result codes of every kdjax solve (``result`` field of a solution; 0 is success)."""

    successful = ""
    max_steps = ("the fixed point did not converge within SolverConfig.max_steps iterations "
                 "(raise max_steps or lower damping)")
    nonfinite = "the fixed-point iteration reached a non-finite state"
    inadmissible = "the fixed point lies outside the admissible states (a response V <= 0)"
    no_finite_minimiser = ("the objective has no finite minimiser in this regime "
                           "(kdjax.has_finite_minimiser; the eager check names it)")
    teacher_failed = "the previous generation (the teacher) did not solve, so the soft labels are undefined"


class _DampedState(eqx.Module):
    residual: jax.Array
    eta: jax.Array
    delta: jax.Array


class DampedIteration(optx.AbstractFixedPointSolver):
    """``x <- x + eta (F(x) - x)``, stopped on the undamped residual.

    The weight ``eta`` starts at ``damping``; it is halved whenever the update reverses its
    direction (``(F(x) - x) . (previous update) < 0``: an oscillating mode of the map, e.g.
    the coupled overlap and bias of an imbalanced mixture, is then damped out) and recovers
    by 20% per step otherwise, never above ``damping`` nor below ``damping / 1000``.
    Terminates when ``max_i |F(x)_i - x_i| / (atol + rtol |x_i|) < 1``.
    """

    rtol: float
    atol: float
    damping: float = 0.5
    norm: Callable = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        inf, eta = jnp.array(jnp.inf, dtype=y.dtype), jnp.array(self.damping, dtype=y.dtype)
        return _DampedState(inf, eta, jnp.zeros_like(y))

    def step(self, fn, y, args, options, state, tags):
        fy, aux = fn(y, args)
        delta = fy - y
        scale = self.atol + self.rtol * jnp.abs(y)
        reverses = jnp.sum(delta / scale * state.delta / scale) < 0
        eta = jnp.clip(jnp.where(reverses, 0.5, 1.2) * state.eta, 1e-3 * self.damping, self.damping)
        return y + eta * delta, _DampedState(self.norm(delta / scale), eta, delta), aux

    def terminate(self, fn, y, args, options, state, tags):
        return state.residual < 1.0, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}


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


def solve_fixed_point(
    F: Callable[[Any, Any], Any], x0, args, config: SolverConfig,
    valid: Callable[[Any], jax.Array] = lambda x: jnp.asarray(True),
) -> FixedPoint:
    """Solve ``x = F(x, args)`` for a state pytree ``x``; differentiable in ``args`` (implicit).

    Stage 1: damped iteration from ``x0`` to a loose tolerance, keeping the best iterate (a
    fixed point that is unstable for the iteration is still a good start for stage 2); no
    gradient flows through it.
    Stage 2: Newton on ``F(x) - x`` to ``config.tol``.
    Stage 3: damped iteration to ``config.tol`` from the better of stages 1 and 2 (one step
    when Newton succeeded).  Stages 2 and 3 carry ``ImplicitAdjoint``.
    ``valid(x)`` marks the admissible states (e.g. a positive response ``V``): the equations
    can have spurious roots outside, which Newton's method may find; such a root is never
    taken over the damped iterate and never reported successful.
    ``result`` is ``successful`` only when the undamped residual at the returned point is
    finite and below ``config.tol`` (in the mixed abs/rel scale) and the point is valid;
    otherwise ``nonfinite``, ``inadmissible`` or ``max_steps``.
    """
    flat0, unravel = ravel_pytree(x0)
    fn = lambda x, a: ravel_pytree(F(unravel(x), a))[0]
    ok = lambda x: valid(unravel(x))
    damped = lambda tol: optx.BestSoFarFixedPoint(DampedIteration(rtol=tol, atol=tol, damping=config.damping))
    loose = max(config.tol**0.5, 1e-6)
    warm = optx.fixed_point(
        fn, damped(loose), flat0, jax.lax.stop_gradient(args),
        max_steps=config.max_steps, throw=False, adjoint=optx.RecursiveCheckpointAdjoint(),
    )
    start = jax.lax.stop_gradient(jnp.where(jnp.all(jnp.isfinite(warm.value)), warm.value, flat0))
    polish = optx.fixed_point(
        fn, optx.Newton(rtol=config.tol, atol=config.tol), start, args,
        max_steps=64, throw=False, adjoint=optx.ImplicitAdjoint(),
    )
    # Where Newton fails (a fixed point at which F is only Lipschitz, e.g. a student that
    # copies its teacher), the damped iteration carries on from the better of the two to the
    # full tolerance; where Newton succeeded this stage stops after one step.
    gap = lambda x: jnp.max(jnp.abs(fn(x, jax.lax.stop_gradient(args)) - x))
    newton_ok = jnp.all(jnp.isfinite(polish.value)) & ok(polish.value) & (gap(polish.value) <= gap(start))
    restart = jax.lax.stop_gradient(jnp.where(newton_ok, polish.value, start))
    final = optx.fixed_point(
        fn, damped(config.tol), restart, args,
        max_steps=config.max_steps, throw=False, adjoint=optx.ImplicitAdjoint(),
    )
    x = final.value
    step = jax.lax.stop_gradient(fn(x, args) - x)
    scaled = jnp.max(jnp.abs(step) / (config.tol + config.tol * jnp.abs(x)))
    residual = jnp.max(jnp.abs(step))
    finite = jnp.isfinite(residual) & jnp.all(jnp.isfinite(x))
    result = RESULTS.where(finite, RESULTS.successful, RESULTS.nonfinite)
    result = RESULTS.where(finite & ~ok(x), RESULTS.inadmissible, result)
    result = RESULTS.where(finite & ok(x) & ~(scaled <= 1.0), RESULTS.max_steps, result)
    iterations = warm.stats["num_steps"] + polish.stats["num_steps"] + final.stats["num_steps"]
    return FixedPoint(x=unravel(x), residual=residual, iterations=iterations, result=result)


class SolveError(RuntimeError):
    """A solve with ``throw=True`` that did not succeed; ``.result`` holds its ``RESULTS`` code."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def is_concrete(*trees) -> bool:
    """Whether every leaf of ``trees`` is a concrete value (not a JAX tracer)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


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
    if result != RESULTS.successful:
        detail = f" (residual {float(solution.residual):.3g})" if result == RESULTS.max_steps else ""
        raise SolveError(f"the {what} fixed point did not converge: {message(result)}{detail}", result)
    return solution
