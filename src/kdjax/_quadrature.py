"""Gaussian expectations by Gauss-Hermite quadrature (docs/theory.md, Sec. 1.3).

The nodes are fixed numbers computed once per degree with numpy at trace time, so every
expectation is a weighted sum: differentiable, vmappable and exact for polynomials of
degree ``< 2 * degree``.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np


@lru_cache(maxsize=None)
def _hermite(degree: int):
    x, w = np.polynomial.hermite.hermgauss(degree)
    return x * np.sqrt(2.0), w / np.sqrt(np.pi)


def gauss_hermite(degree: int, dtype=None):
    """Nodes ``xi_k`` and weights ``w_k`` with ``E f(xi) ~= sum_k w_k f(xi_k)``, ``xi ~ N(0, 1)``."""
    x, w = _hermite(degree)
    dtype = dtype or jnp.result_type(float)
    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)


def gauss_hermite_2d(degree: int, dtype=None):
    """Tensor-product nodes ``(xi_1, xi_2)`` and weights for two independent ``N(0, 1)``."""
    x, w = gauss_hermite(degree, dtype)
    x1, x2 = jnp.meshgrid(x, x, indexing="ij")
    return x1.ravel(), x2.ravel(), jnp.outer(w, w).ravel()


@jax.custom_jvp
def safe_sqrt(x):
    """``sqrt(max(x, tiny))`` with ``tiny`` the dtype's smallest normal number, and a derivative
    that is finite in every float dtype: ``1 / (2 sqrt(x))`` for ``x > tiny``, 0 below (round-off
    negatives and exact zeros, e.g. a student that copies its teacher).
    """
    return jnp.sqrt(jnp.maximum(x, jnp.finfo(jnp.result_type(x, float)).tiny))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    root = safe_sqrt(x)
    inside = x > jnp.finfo(root.dtype).tiny
    return root, jnp.where(inside, dx / (2.0 * root), 0.0)


def normal_cdf(x):
    return jax.scipy.special.ndtr(x)


def normal_pdf(x):
    return jnp.exp(-0.5 * x**2) / jnp.sqrt(2.0 * jnp.pi)


def label_rows(mixture):
    """``(y, y_obs, weight)``: the (true, observed) label pairs of a training sample, as columns
    ``(rows, 1)`` broadcastable against node axes, and their probabilities ``(rows,)``.

    Clean mixtures: ``y = y_obs = (+1, -1)`` with weights ``(rho, 1 - rho)``.  With label noise
    ``eta`` (``mixture.noisy``): the four pairs ``(+1, +1), (+1, -1), (-1, -1), (-1, +1)`` with
    weights ``rho (1 - eta), rho eta, (1 - rho)(1 - eta), (1 - rho) eta`` (docs/model.md).
    """
    rho = mixture.rho
    dtype = jnp.result_type(rho, mixture.delta, float)
    if not mixture.noisy:
        y = jnp.asarray([1.0, -1.0], dtype)[:, None]
        return y, y, jnp.stack([rho, 1.0 - rho]).astype(dtype)
    eta = mixture.label_noise
    y = jnp.asarray([1.0, 1.0, -1.0, -1.0], dtype)[:, None]
    y_obs = jnp.asarray([1.0, -1.0, -1.0, 1.0], dtype)[:, None]
    w = jnp.stack([rho * (1.0 - eta), rho * eta, (1.0 - rho) * (1.0 - eta), (1.0 - rho) * eta]).astype(dtype)
    return y, y_obs, w


def row_average(weight, per_row):
    """``sum_rows weight f(row)`` for ``per_row`` stacked along axis 0 (see ``label_rows``)."""
    return jnp.tensordot(weight, per_row, axes=1)


@lru_cache(maxsize=None)
def _legendre(degree: int):
    return np.polynomial.legendre.leggauss(degree)


def gauss_legendre(lo, hi, degree: int):
    """Nodes and weights of ``int_lo^hi g(x) dx ~= sum_k w_k g(x_k)`` (broadcasts over lo, hi)."""
    x, w = _legendre(degree)
    half = 0.5 * (hi - lo)[..., None]
    return 0.5 * (hi + lo)[..., None] + half * x, half * w


def bisect_root(g, lo, hi, steps: int = 64):
    """A sign change of the elementwise function ``g`` in ``[lo, hi]`` by bisection.

    Where ``g(lo)`` and ``g(hi)`` share a sign there is no crossing and the midpoint of the
    interval is returned (any split point is then as good as another).
    """
    g_lo = g(lo)

    def body(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        same = jnp.sign(g(mid)) == jnp.sign(g_lo)
        return jnp.where(same, mid, a), jnp.where(same, b, mid)

    a, b = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return 0.5 * (a + b)


def sinh_nodes(lo, hi, center, width, n: int, index=None):
    """Nodes and weights of ``int_lo^hi g(x) dx``, refined around ``center`` on a scale ``width``.

    Trapezoidal rule in ``t`` after the map ``x = center + width sinh(t)``: nodes are
    ``width dt`` apart near ``center`` and ``dt sqrt(width^2 + d^2)`` apart at distance ``d``.
    For integrands analytic in a strip that vanish at both ends the error decays exponentially
    in ``n``.  Broadcasts over the arguments; the node axis is last.  ``index``: the nodes
    ``0 <= k < n`` to return (default: all ``n``).
    """
    lo, hi, center, width = (jnp.asarray(v)[..., None] for v in (lo, hi, center, width))
    t_lo = jnp.arcsinh((lo - center) / width)
    t_hi = jnp.arcsinh((hi - center) / width)
    k = (jnp.arange(n) if index is None else index).astype(t_lo.dtype) / (n - 1)
    t = t_lo + (t_hi - t_lo) * k
    ends = jnp.where((k == 0) | (k == 1), 0.5, 1.0)
    dt = (t_hi - t_lo) / (n - 1)
    e, e_inv = jnp.exp(t), jnp.exp(-t)  # sinh and cosh from the same two exponentials
    return center + 0.5 * width * (e - e_inv), ends * dt * width * 0.5 * (e + e_inv)


def sinh_rule(center, width, n: int, span: float = 10.0, reach: float = 5.0):
    """Nodes and weights of ``E g(xi)``, ``xi ~ N(0, 1)``, refined around ``center``.

    ``sinh_nodes`` over ``xi in [-span, span]`` times the normal density: nodes are dense
    where the integrand turns (e.g. where a pre-activation crosses 0), including when the
    Gaussian is wide compared with the scale of the loss (where Gauss-Hermite converges
    slowly).  Centres beyond ``reach`` are clipped to it: a turn that far in the tail carries
    no weight, while the Gaussian bulk must stay resolved.
    """
    center = jnp.clip(center, -reach, reach)
    xi, w = sinh_nodes(-span, span, center, width, n)
    return xi, w * normal_pdf(xi)
