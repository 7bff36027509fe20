"""Information-theoretic baseline: the Bayes-optimal classifier of the mixture.

Closed forms of the mixture parameters, written
with JAX primitives so that they pass through ``jit``, ``vmap`` and ``grad`` in the caller's dtype.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._observables import gen_error_unchecked
from ._params import Mixture, check_instance

__all__ = [
    "BayesOverlaps",
    "bayes_optimal_overlaps",
    "bayes_optimal_error",
]


class BayesOverlaps(eqx.Module):
    """Overlaps ``m = w . v / N``, ``q = |w|^2 / N`` and bias ``b`` of the Bayes classifier."""

    m: jax.Array
    q: jax.Array
    b: jax.Array

    def __iter__(self):  # m, q, b = bayes_optimal_overlaps(mixture)
        return iter((self.m, self.q, self.b))


def bayes_optimal_overlaps(mixture: Mixture) -> BayesOverlaps:
    """Overlaps of the Bayes-optimal classifier of the mixture, prior ``v ~ N(0, I_N)``.

    With the labels known, the likelihood of the training set depends on ``v`` only through
    ``s = sum_i y_i x_i`` (``|y_i| = 1``), and ``s sqrt(N) / n = v + sqrt(delta / alpha) zeta``,
    ``zeta ~ N(0, I_N)``.  The posterior is
    ``N(c (v + sqrt(delta / alpha) zeta), c delta / alpha I)`` with ``c = alpha / (alpha + delta)``.
    The posterior predictive of a new input given ``y`` is
    ``N(y v_hat / sqrt(N), (delta + O(1/N)) I)``: isotropic, so the Bayes classifier is linear,
    ``h = v_hat . x / sqrt(N) + b`` with ``b = (delta / 2) log(rho / (1 - rho))``, and

    ``m = c``, ``q = c^2 (1 + delta / alpha)``.
    """
    check_instance("mixture", mixture, Mixture)
    alpha, delta, rho = mixture.alpha, mixture.delta, mixture.rho
    c = alpha / (alpha + delta)
    m = c
    q = c * c * (1.0 + delta / alpha)
    b = 0.5 * delta * (jnp.log(rho) - jnp.log1p(-rho))
    return BayesOverlaps(m=jnp.asarray(m), q=jnp.asarray(q), b=jnp.asarray(b))


def bayes_optimal_error(mixture: Mixture):
    """Bayes-optimal test error ``eps_BO = gen_error(m, q, b, delta, rho)`` at the overlaps of
    :func:`bayes_optimal_overlaps`; for ``rho = 1/2``,
    ``Phi(-sqrt(alpha / (delta (alpha + delta))))``.
    """
    m, q, b = bayes_optimal_overlaps(mixture)
    return gen_error_unchecked(m, q, b, mixture.delta, mixture.rho)
