"""The one fixed-point driver of kdjax (optimistix), in one place.

A state ``x`` (a flat vector of order parameters) solves ``x = F(x, args)``.  The driver runs
a damped iteration ``x <- x + eta (F(x) - x)`` whose stopping test reads the *undamped*
residual ``|F(x) - x|`` (so damping never hides a large residual), then polishes the result
by Newton's method on ``F(x) - x``.  Derivatives with respect to ``args`` come from the
implicit function theorem at the solution (``optimistix.ImplicitAdjoint``): nothing is
unrolled.  Failure is reported through ``converged`` and ``result`` fields, never raised
inside ``jit``/``vmap``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx

from ._params import SolverConfig


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


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """Solution ``x`` with its undamped residual ``max |F(x) - x|``, iterations and flag."""

    x: jax.Array
    residual: jax.Array
    iterations: jax.Array
    converged: jax.Array


jax.tree_util.register_dataclass(
    FixedPoint, data_fields=["x", "residual", "iterations", "converged"], meta_fields=[]
)


def solve_fixed_point(
    F: Callable[[jax.Array, Any], jax.Array], x0, args, config: SolverConfig,
    valid: Callable[[jax.Array], jax.Array] = lambda x: jnp.asarray(True),
):
    """Solve ``x = F(x, args)``; differentiable in ``args`` by the implicit function theorem.

    Stage 1: damped iteration from ``x0`` to a loose tolerance, keeping the best iterate (a
    fixed point that is unstable for the iteration is still a good start for stage 2); no
    gradient flows through it.
    Stage 2: Newton on ``F(x) - x`` to ``config.tol``.
    Stage 3: damped iteration to ``config.tol`` from the better of stages 1 and 2 (one step
    when Newton succeeded).  Stages 2 and 3 carry ``ImplicitAdjoint``.
    ``valid(x)`` marks the admissible states (e.g. a positive response ``V``): the equations
    can have spurious roots outside, which Newton's method may find; such a root is never
    taken over the damped iterate and never reported converged.
    ``converged`` is true only when the undamped residual at the returned point is finite
    and below ``config.tol`` (in the mixed abs/rel scale) and the point is valid.
    """
    fn = lambda x, a: F(x, a)
    damped = lambda tol: optx.BestSoFarFixedPoint(DampedIteration(rtol=tol, atol=tol, damping=config.damping))
    loose = max(config.tol**0.5, 1e-6)
    warm = optx.fixed_point(
        fn, damped(loose), x0, jax.lax.stop_gradient(args),
        max_steps=config.max_steps, throw=False, adjoint=optx.RecursiveCheckpointAdjoint(),
    )
    start = jax.lax.stop_gradient(jnp.where(jnp.all(jnp.isfinite(warm.value)), warm.value, x0))
    polish = optx.fixed_point(
        fn, optx.Newton(rtol=config.tol, atol=config.tol), start, args,
        max_steps=64, throw=False, adjoint=optx.ImplicitAdjoint(),
    )
    # Where Newton fails (a fixed point at which F is only Lipschitz, e.g. a student that
    # copies its teacher), the damped iteration carries on from the better of the two to the
    # full tolerance; where Newton succeeded this stage stops after one step.
    gap = lambda x: jnp.max(jnp.abs(F(x, jax.lax.stop_gradient(args)) - x))
    newton_ok = jnp.all(jnp.isfinite(polish.value)) & valid(polish.value) & (gap(polish.value) <= gap(start))
    restart = jax.lax.stop_gradient(jnp.where(newton_ok, polish.value, start))
    final = optx.fixed_point(
        fn, damped(config.tol), restart, args,
        max_steps=config.max_steps, throw=False, adjoint=optx.ImplicitAdjoint(),
    )
    x = final.value
    gap = jax.lax.stop_gradient(F(x, args) - x)
    scaled = jnp.max(jnp.abs(gap) / (config.tol + config.tol * jnp.abs(x)))
    residual = jnp.max(jnp.abs(gap))
    converged = jnp.isfinite(residual) & (scaled <= 1.0) & valid(x)
    iterations = warm.stats["num_steps"] + polish.stats["num_steps"] + final.stats["num_steps"]
    return FixedPoint(x=x, residual=residual, iterations=iterations, converged=converged)
