"""Information-theoretic baseline: the Bayes-optimal classifier of the mixture (docs/bayes.md).

Clean labels (``mixture.noisy`` False): closed form (bayes.md, Eq. 2.3).  Noisy labels
(``label_noise = eta > 0``): the replica-symmetric / state-evolution fixed point of Bayes-optimal
inference of the cluster direction ``v`` from the inputs and their noisy labels (bayes.md,
Sec. 3), solved by ``kdjax._solve.solve_fixed_point`` (implicit differentiation), with Gaussian
averages on fixed quadrature nodes.  Everything is written with JAX primitives so that it passes
through ``jit``, ``vmap`` and ``grad`` in the caller's dtype.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._compile import jit
from ._observables import gen_error_unchecked
from ._params import Mixture, SolverConfig, check_instance
from ._quadrature import label_rows, row_average, safe_sqrt, sinh_rule
from ._solve import RESULTS, raise_if_failed, solve_fixed_point

__all__ = [
    "BayesOverlaps",
    "BayesState",
    "bayes_optimal_overlaps",
    "bayes_optimal_error",
]


class BayesOverlaps(eqx.Module):
    """Overlaps ``m = w . v / N``, ``q = |w|^2 / N`` and bias ``b`` of the Bayes classifier.

    ``w`` is the posterior mean of ``v`` (bayes.md, Sec. 4), so that ``m = q`` (Nishimori).
    Also: ``m_hat``, the conjugate of ``m`` (signal-to-noise ratio of the effective scalar
    channel of ``v``, Eq. 3.5); ``label_overlap``, ``E[y y_hat]`` of the posterior mean
    ``y_hat`` of a training sample's clean label (1 for clean labels, Eq. 3.4); ``residual``
    of the fixed point (0 for the closed form) and its ``result`` code (``kdjax.RESULTS``).
    Iterating gives ``(m, q, b)``.
    """

    m: jax.Array
    q: jax.Array
    b: jax.Array
    m_hat: jax.Array
    label_overlap: jax.Array
    residual: jax.Array
    result: RESULTS

    @property
    def converged(self):
        return self.result == RESULTS.successful

    def __iter__(self):  # m, q, b = bayes_optimal_overlaps(mixture)
        return iter((self.m, self.q, self.b))


class BayesState(eqx.Module):
    """State of the Bayes-optimal fixed point: the overlap ``m = q`` of the posterior mean."""

    m: jax.Array


def _bias(delta, rho):
    """Bayes bias ``b = (delta / 2) log(rho / (1 - rho))`` (bayes.md, Eq. 4.3)."""
    return 0.5 * delta * (jnp.log(rho) - jnp.log1p(-rho))


def _label_posterior(rho, eta, y_obs):
    """``(p_plus, p_minus)``: ``P(y = +-1 | y~)`` for the observed labels ``y_obs`` (Eq. 3.1).

    Written without ``log(eta)`` so that it is smooth at ``eta = 0``.
    """
    flip = jnp.where(y_obs > 0, eta, 1.0 - eta)  # P(y~ | y = -1)
    keep = jnp.where(y_obs > 0, 1.0 - eta, eta)  # P(y~ | y = +1)
    plus, minus = rho * keep, (1.0 - rho) * flip
    total = plus + minus
    return plus / total, minus / total


def _posterior_mean_and_log_norm(field, p_plus, p_minus):
    """``y_hat = E[y | field, y~]`` and ``log sum_y P(y | y~) exp(y field)``, overflow-free.

    With ``t = exp(-2 |field|)``: for ``field >= 0``, ``y_hat = (p+ - p- t) / (p+ + p- t)`` and
    ``log Z = field + log(p+ + p- t)``; mirrored for ``field < 0`` (Eqs. 3.3, 3.7).
    """
    t = jnp.exp(-2.0 * jnp.abs(field))
    pos = field >= 0
    same = jnp.where(pos, p_plus, p_minus)  # weight of the label along the field's sign
    other = jnp.where(pos, p_minus, p_plus)
    denom = same + other * t
    y_hat = jnp.where(pos, 1.0, -1.0) * (same - other * t) / denom
    return y_hat, jnp.abs(field) + jnp.log(denom)


def _label_channel(mu, mixture: Mixture, degree: int):
    """``(q_y, psi_y)`` of the scalar label channel at signal-to-noise ratio ``mu`` (Eqs. 3.3, 3.7).

    A training sample's clean label ``y`` is observed through its noisy label ``y~`` and the
    Gaussian field ``B = mu y + sqrt(mu) xi``.  ``q_y = E[y y_hat(B, y~)]`` and
    ``psi_y = E log sum_y' P(y' | y~) exp(y' B) - mu / 2``, averaged over the four (y, y~) rows
    and ``xi ~ N(0, 1)`` (trapezoid after a sinh map, refined where ``y_hat`` turns).
    """
    y, y_obs, weight = label_rows(mixture)
    p_plus, p_minus = _label_posterior(mixture.rho, mixture.label_noise, y_obs)
    root = safe_sqrt(mu)
    # nodes (held fixed under differentiation): y_hat turns where B + h0(y~) = 0,
    # h0 = (1/2) log(p+ / p-), i.e. at xi = -(mu y + h0) / sqrt(mu), on the scale 1 / sqrt(mu)
    tiny = jnp.finfo(p_plus.dtype).tiny
    h0 = 0.5 * (jnp.log(jnp.maximum(p_plus, tiny)) - jnp.log(jnp.maximum(p_minus, tiny)))
    r = jax.lax.stop_gradient(root)
    center = jax.lax.stop_gradient(
        jnp.where(r > 0, -(mu * y + h0) / jnp.maximum(r, tiny), jnp.where(h0 > 0, -10.0, 10.0)))
    xi, w = sinh_rule(center[:, 0], 1.0 / (1.0 + r), degree)
    field = mu * y + root * xi
    y_hat, log_z = _posterior_mean_and_log_norm(field, p_plus, p_minus)
    q_y = row_average(weight, jnp.sum(w * y * y_hat, axis=-1))
    psi_y = row_average(weight, jnp.sum(w * log_z, axis=-1)) - 0.5 * mu
    return q_y, psi_y


def _update(state: BayesState, mixture: Mixture, degree: int):
    """One state-evolution step ``m -> F(m)`` (Eqs. 3.3-3.5)."""
    alpha, delta = mixture.alpha, mixture.delta
    q_y, _ = _label_channel(state.m / delta, mixture, degree)  # (3.3), mu = m / Delta
    m_hat = alpha * q_y / delta  # (3.4)
    return BayesState(m=m_hat / (1.0 + m_hat))  # (3.5)


def free_entropy(m, mixture: Mixture, degree: int = 128):
    """Replica-symmetric potential ``Phi(m)`` evaluated on the state-evolution curve (Eq. 3.8).

    At a fixed point it is the free entropy per input dimension; the Bayes-optimal fixed point
    is the one with the largest ``Phi``.
    """
    alpha, delta = mixture.alpha, mixture.delta
    q_y, psi_y = _label_channel(m / delta, mixture, degree)
    m_hat = alpha * q_y / delta
    psi_v = 0.5 * (m_hat - jnp.log1p(m_hat))
    return psi_v + alpha * psi_y - 0.5 * alpha * m * q_y / delta


@jit(static_argnames=("config",))
def _noisy_overlaps(mixture: Mixture, *, config: SolverConfig) -> BayesOverlaps:
    """The state evolution's fixed point (3.3)-(3.5), one compiled program."""
    dtype = jnp.result_type(mixture.alpha, mixture.delta, mixture.rho, mixture.label_noise, float)
    mixture = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), mixture)
    alpha, delta, rho = mixture.alpha, mixture.delta, mixture.rho
    degree = config.degree
    # F is increasing in m and bounded by the clean value alpha / (alpha + delta): iterated from
    # the top (informative start) and from 0 it reaches the largest and the smallest fixed
    # point.  Where they differ the Bayes-optimal one maximises the potential (3.8).
    top = alpha / (alpha + delta)
    starts = BayesState(m=jnp.stack([top, jnp.zeros_like(top)]))
    valid = lambda s: (s.m >= 0) & (s.m <= 1)
    F = lambda state, mix: _update(state, mix, degree)
    solve = lambda x0: solve_fixed_point(F, x0, mixture, config, valid=valid)
    fps = jax.vmap(solve)(starts)
    phi = jax.lax.stop_gradient(jax.vmap(lambda m: free_entropy(m, mixture, degree))(fps.x.m))
    ok = fps.result._value == RESULTS.successful._value
    # prefer a converged point; among converged, the larger potential (ties: the informative one)
    pick_low = ok[1] & (~ok[0] | (phi[1] > phi[0] + 1e-12 * jnp.abs(phi[0])))
    fp = jax.tree_util.tree_map(lambda x: jnp.where(pick_low, x[1], x[0]), fps)
    m, residual, result = fp.x.m, fp.residual, fp.result
    q_y, _ = _label_channel(m / delta, mixture, degree)
    return BayesOverlaps(m=m, q=m, b=_bias(delta, rho), m_hat=alpha * q_y / delta,
                         label_overlap=q_y, residual=residual, result=result)


def bayes_optimal_overlaps(mixture: Mixture, config: SolverConfig = SolverConfig(), *,
                           throw: bool = True) -> BayesOverlaps:
    """Overlaps of the Bayes-optimal classifier of the mixture, prior ``v ~ N(0, I_N)``.

    The Bayes classifier of a clean test label is linear to leading order in ``N``:
    ``h = v_hat . x / sqrt(N) + b``, ``v_hat`` the posterior mean of ``v`` given the training
    inputs and their (noisy) labels, ``b = (delta / 2) log(rho / (1 - rho))`` (docs/bayes.md,
    Sec. 4).  Its overlaps are ``m = q`` (Nishimori):

    - clean labels (``mixture.noisy`` False): ``m = q = alpha / (alpha + delta)`` (Eq. 2.3);
    - label noise ``eta > 0``: the fixed point of the state evolution (Eqs. 3.3-3.5)
      ``m = m_hat / (1 + m_hat)``, ``m_hat = alpha q_y(m / delta) / delta``,
      ``q_y(mu) = E[y tanh(mu y + sqrt(mu) xi + h0(y~))]``, ``h0`` the log-odds of the clean
      label given the noisy one.

    ``throw=True`` raises ``kdjax.SolveError`` when the fixed point does not converge
    (``throw=False``: see ``result``).  ``jit``, ``vmap`` and ``grad`` compose (implicit
    differentiation at the fixed point).
    """
    check_instance("mixture", mixture, Mixture)
    check_instance("config", config, SolverConfig)
    if mixture.noisy:
        out = _noisy_overlaps(mixture, config=config)
        return raise_if_failed(out, "Bayes-optimal") if throw else out
    return _clean_overlaps(mixture)


@jit
def _clean_overlaps(mixture: Mixture) -> BayesOverlaps:
    """The closed form (2.3) of clean labels, one compiled program."""
    alpha, delta, rho = mixture.alpha, mixture.delta, mixture.rho
    c = alpha / (alpha + delta)  # (2.3)
    m = jnp.asarray(c)
    q = jnp.asarray(c * c * (1.0 + delta / alpha))
    b = jnp.asarray(_bias(delta, rho))
    zero = jnp.zeros_like(m)
    result = RESULTS.where(jnp.asarray(True), RESULTS.successful, RESULTS.nonfinite)
    return BayesOverlaps(m=m, q=q, b=b, m_hat=jnp.asarray(alpha / delta), label_overlap=zero + 1.0,
                         residual=zero, result=result)


def bayes_optimal_error(mixture: Mixture, config: SolverConfig = SolverConfig(), *,
                        throw: bool = True):
    """Bayes-optimal test error (against the clean label), Eq. 4.4:
    ``eps_BO = rho Phi(-(m + b) / sqrt(delta m)) + (1 - rho) Phi(-(m - b) / sqrt(delta m))`` at the
    overlaps of :func:`bayes_optimal_overlaps`; for clean labels and ``rho = 1/2``,
    ``Phi(-sqrt(alpha / (delta (alpha + delta))))``.
    """
    m, q, b = bayes_optimal_overlaps(mixture, config, throw=throw)
    return _gen_error(m, q, b, mixture.delta, mixture.rho)


_gen_error = jit(gen_error_unchecked)
