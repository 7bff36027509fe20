"""Test-time observables of linear classifiers from their order parameters (docs/model.md).

Given the class ``y`` (``P(y = +1) = rho``), a classifier ``h = w . x / sqrt(N) + b`` on a fresh
input is Gaussian, ``h | y ~ N(y m + b, delta q)``; two classifiers (teacher ``t``, student ``s``)
are jointly Gaussian with covariance ``delta r``.  Everything here follows from that fact and is
written with JAX primitives only, so that it passes through ``jit``, ``vmap`` and ``grad`` in the
caller's dtype (float32 or float64).  The public functions check concrete inputs (``q > 0``,
``delta > 0``, ``0 < rho < 1``, finite overlaps) with a one-line ``ValueError``; traced ones pass.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, ndtr

from ._params import check_range, real_value

__all__ = ["gen_error", "bivariate_normal_cdf", "agreement"]

_TWO_PI = 2.0 * math.pi
_SQRT_TWO = math.sqrt(2.0)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)

# Switch between the two representations of Genz (2004): the integral over asin(corr) below,
# the expansion around |corr| = 1 above.
_CORR_SWITCH = 0.925
# 20-point Gauss-Legendre rule on [-1, 1]: ~1e-15 absolute accuracy for both integrands.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(20)


def _float_dtype(*xs):
    """Floating dtype of the promoted inputs (integers, Python scalars: the default float)."""
    return jnp.result_type(float, *xs)


def _check_inputs(delta, rho, positive=(), finite=()):
    """``delta > 0``, ``0 < rho < 1``, the ``positive`` ``(name, value)`` pairs ``> 0``, the
    ``finite`` ones finite (concrete values only: traced ones pass)."""
    check_range("delta", delta, 0.0)
    check_range("rho", rho, 0.0, 1.0)
    for name, value in positive:
        check_range(name, value, 0.0)
    for name, value in finite:
        check_range(name, value)


def _check_cauchy_schwarz(r, q_t, q_s):
    """``r^2 <= q_t q_s`` up to a relative ``max(1e-12, 8 eps)`` of the inputs' float dtype."""
    r_, q_t_, q_s_ = (real_value(name, x) for name, x in (("r", r), ("q_t", q_t), ("q_s", q_s)))
    if r_ is None or q_t_ is None or q_s_ is None:
        return
    rtol = max(1e-12, 8 * float(jnp.finfo(_float_dtype(r, q_t, q_s)).eps))
    r2, qq = np.broadcast_arrays(r_ * r_, q_t_ * q_s_)
    bad = r2 > qq * (1.0 + rtol)
    if np.any(bad):
        raise ValueError(f"r must satisfy r^2 <= q_t q_s (Cauchy-Schwarz), got r^2 = "
                         f"{r2[bad].flat[0]:g} > q_t q_s = {qq[bad].flat[0]:g}")


def gen_error(m, q, b, delta, rho):
    """Generalisation error of ``sign(w . x / sqrt(N) + b)`` on the Gaussian mixture.

    ``eps = rho Phi(-(m + b) / sqrt(delta q)) + (1 - rho) Phi(-(m - b) / sqrt(delta q))``
    with ``m = w . v / N``, ``q = |w|^2 / N`` (``> 0``) and ``Phi`` the standard normal CDF.
    """
    _check_inputs(delta, rho, positive=[("q", q)], finite=[("m", m), ("b", b)])
    return gen_error_unchecked(m, q, b, delta, rho)


def gen_error_unchecked(m, q, b, delta, rho):
    scale = jnp.sqrt(delta * q)
    return rho * ndtr(-(m + b) / scale) + (1.0 - rho) * ndtr(-(m - b) / scale)


def _bvn_asin(h, k, corr, nodes, weights):
    """``Phi(h) Phi(k) + (1 / 2 pi) int_0^{asin corr} exp(-(h^2 + k^2 - 2 h k sin t) / (2 cos^2 t))
    dt``.  Integral of ``dF/dcorr = phi_2(h, k; corr)`` from 0, with ``corr = sin t``;
    Gauss-Legendre.
    """
    theta_max = jnp.arcsin(corr)
    half = 0.5 * theta_max[..., None]
    sin_t = jnp.sin(half * (nodes + 1.0))
    h_, k_ = h[..., None], k[..., None]
    integrand = jnp.exp((h_ * k_ * sin_t - 0.5 * (h_ * h_ + k_ * k_)) / (1.0 - sin_t * sin_t))
    integral = jnp.sum(half * weights * integrand, axis=-1)
    return ndtr(h) * ndtr(k) + integral / _TWO_PI


def _bvn_tail_integral(h, k, corr, nodes, weights):
    """``int_corr^1 phi_2(h, k; t) dt`` for ``0 < corr < 1`` (Drezner-Wesolowsky / Genz expansion).

    With ``x = sqrt(1 - t^2)``, ``a = sqrt(1 - corr^2)``, ``s = |h - k|`` the integral is
    ``(1 / 2 pi) int_0^a exp(-s^2 / (2 x^2)) f(x) dx`` with
    ``f(x) = exp(-h k / (1 + sqrt(1 - x^2))) / sqrt(1 - x^2)
          = exp(-h k / 2) (1 + c x^2 + c d x^4 + O(x^6))``, ``c = (4 - h k) / 8``,
    ``d = (12 - h k) / 16``.  The polynomial part is integrated in closed form through
    ``J_n = int_0^a x^(2n) exp(-s^2 / (2 x^2)) dx``:
    ``J_0 = a E - s sqrt(2 pi) Phi(-s / a)``, ``J_n = (a^(2n+1) E - s^2 J_(n-1)) / (2n + 1)``,
    ``E = exp(-s^2 / (2 a^2))``; the O(x^6) remainder by Gauss-Legendre on ``[0, a]``.
    """
    hk = h * k
    diff = h - k
    s = jnp.maximum(diff, -diff)  # |h - k|, with a zero (average) derivative at h = k
    s2 = s * s
    a2 = (1.0 - corr) * (1.0 + corr)
    a = jnp.sqrt(a2)
    c = (4.0 - hk) / 8.0
    d = (12.0 - hk) / 16.0
    # exp(-h k / 2) folded into E, and sqrt(2 pi) Phi(-s / a) = sqrt(pi / 2) erfcx(s / (sqrt(2) a))
    # E, so that no factor overflows.
    e_term = jnp.exp(-0.5 * (s2 / a2 + hk))
    p_term = _SQRT_HALF_PI * erfcx(s / (_SQRT_TWO * a)) * e_term
    j0 = a * e_term - s * p_term
    j1 = (a * a2 * e_term - s2 * j0) / 3.0
    j2 = (a * a2 * a2 * e_term - s2 * j1) / 5.0
    closed_form = j0 + c * j1 + c * d * j2

    half = 0.5 * a[..., None]
    x2 = (half * (nodes + 1.0)) ** 2
    root = jnp.sqrt(1.0 - x2)
    s2_, hk_, c_, d_ = s2[..., None], hk[..., None], c[..., None], d[..., None]
    gauss = -0.5 * s2_ / x2
    remainder = jnp.exp(gauss - hk_ / (1.0 + root)) / root - jnp.exp(gauss - 0.5 * hk_) * (
        1.0 + c_ * x2 * (1.0 + d_ * x2)
    )
    quad = jnp.sum(half * weights * remainder, axis=-1)
    return (closed_form + quad) / _TWO_PI


def bivariate_normal_cdf(h, k, corr):
    """``P(X <= h, Y <= k)`` for standard normals ``X, Y`` with correlation ``corr`` in [-1, 1].

    Genz (2004), after Drezner & Wesolowsky (1990), from ``dF/dcorr = phi_2(h, k; corr)``:

    * ``|corr| < 0.925``: ``F = Phi(h) Phi(k) + int_0^corr phi_2(h, k; t) dt``, the integral taken
      over ``asin t`` by Gauss-Legendre;
    * ``corr >= 0.925``: ``F = Phi(min(h, k)) - int_corr^1 phi_2(h, k; t) dt`` (expansion of the
      integrand around ``t = 1``);
    * ``corr <= -0.925``: ``F = max(0, Phi(h) - Phi(-k)) + int_|corr|^1 phi_2(h, -k; t) dt``
      (reflection ``Y -> -Y``).

    Exact at ``corr = 1`` (``Phi(min(h, k))``) and ``corr = -1`` (``max(0, Phi(h) - Phi(-k))``);
    ``corr`` outside [-1, 1] is clipped.  Broadcasts over its arguments; every branch is evaluated
    on safe inputs (double ``where``), so gradients stay finite under ``jit``/``vmap``/``grad``.
    """
    dtype = _float_dtype(h, k, corr)
    h, k, corr = jnp.broadcast_arrays(*(jnp.asarray(x, dtype) for x in (h, k, corr)))
    corr = jnp.clip(corr, -1.0, 1.0)
    nodes = jnp.asarray(_GL_NODES, dtype)
    weights = jnp.asarray(_GL_WEIGHTS, dtype)

    central = jnp.abs(corr) < _CORR_SWITCH
    corr_c = jnp.where(central, corr, 0.0)
    f_central = _bvn_asin(h, k, corr_c, nodes, weights)

    negative = corr < 0.0
    k_ref = jnp.where(negative, -k, k)
    abs_corr = jnp.where(negative, -corr, corr)
    degenerate = abs_corr >= 1.0  # a = sqrt(1 - corr^2) = 0: the tail integral vanishes
    corr_t = jnp.where(central | degenerate, 0.95, abs_corr)
    tail = jnp.where(degenerate, 0.0, _bvn_tail_integral(h, k_ref, corr_t, nodes, weights))
    f_pos = ndtr(jnp.minimum(h, k)) - tail
    gap = ndtr(h) - ndtr(-k)
    f_neg = jnp.maximum(gap, 0.0) + tail
    return jnp.where(central, f_central, jnp.where(negative, f_neg, f_pos))


def agreement(m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho):
    """``P(sign h_s = sign h_t)`` on a fresh input; teacher ``(m_t, q_t, b_t)``, student
    ``(m_s, q_s, b_s)``, teacher-student overlap ``r``.

    Given ``y``, ``(h_t, h_s)`` is Gaussian with means ``(y m_t + b_t, y m_s + b_s)``, variances
    ``(delta q_t, delta q_s)`` and covariance ``delta r``.  With ``u_t = (y m_t + b_t) / sqrt(delta
    q_t)``, ``u_s = (y m_s + b_s) / sqrt(delta q_s)`` and ``c = r / sqrt(q_t q_s)`` (clipped into
    [-1, 1] against round-off), the disagreement given ``y`` is
    ``P(h_t > 0, h_s < 0) + P(h_t < 0, h_s > 0) = F(u_t, -u_s, -c) + F(-u_t, u_s, -c)`` with
    ``F = bivariate_normal_cdf``, and ``agreement = 1 - sum_y P(y) disagreement(y)``.
    Identical classifiers give exactly 1 (``F(u, -u, -1) = 0``).  Requires ``q_t, q_s > 0`` and
    ``r^2 <= q_t q_s`` (Cauchy-Schwarz, to a relative ``1e-12``).
    """
    _check_inputs(delta, rho, positive=[("q_t", q_t), ("q_s", q_s)],
                  finite=[("m_t", m_t), ("b_t", b_t), ("m_s", m_s), ("r", r), ("b_s", b_s)])
    _check_cauchy_schwarz(r, q_t, q_s)
    return agreement_unchecked(m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho)


def agreement_unchecked(m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho):
    """``agreement`` without the input checks (for the solvers' own, possibly unconverged, states)."""
    m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho = jnp.broadcast_arrays(
        m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho
    )
    corr = jnp.clip(r / jnp.sqrt(q_t * q_s), -1.0, 1.0)
    scale_t = jnp.sqrt(delta * q_t)
    scale_s = jnp.sqrt(delta * q_s)

    u_t = jnp.stack([(m_t + b_t) / scale_t, (b_t - m_t) / scale_t])  # y = +1, -1
    u_s = jnp.stack([(m_s + b_s) / scale_s, (b_s - m_s) / scale_s])
    # one batched evaluation of F: axis 0 is (h_t > 0 > h_s, h_t < 0 < h_s), axis 1 is y = +1, -1
    cdf = bivariate_normal_cdf(jnp.stack([u_t, -u_t]), jnp.stack([-u_s, u_s]), -corr)
    disagreement = cdf[0] + cdf[1]
    return 1.0 - (rho * disagreement[0] + (1.0 - rho) * disagreement[1])
