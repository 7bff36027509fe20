"""What a same-input generation needs of every generation before it: the chain ``Record`` (docs/chains.md).

A generation ``k`` of a chain is summarised, for the same-input generations after it, by

* ``m, b, q, gamma``: its order parameters and the fraction of the coordinates it sees;
* ``L`` (length ``k + 1``): row ``k`` of the Cholesky factor of the overlap matrix
  ``Q_jl = w_j . w_l / N`` of generations ``0..k`` (zero-padded weights), ``L[k]^2 = sigma2``, the
  part of ``q_k`` not explained by the earlier generations (C.9)-(C.10);
* ``V`` (length ``k + 1``): the responses ``V_kl`` of its training output to a sample's force on
  generation ``l`` (C.3), (C.8);
* ``a, B, Xi``: its per-coordinate representation ``w_k = a_k v + sum_l B_kl xi_l`` on its
  coordinates and row ``k`` of the noise covariances ``Xi_kl = E[xi_k xi_l]`` (C.5)-(C.6).

``update`` is the algebra shared by every distilled generation: from its conjugates
``(m_hat, V_hat_k., Xi_k.)`` and the earlier records it gives its weights (C.5)-(C.10).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._quadrature import safe_sqrt

# A pivot L_ll^2 <= PIVOT q_l marks generation l as (numerically) a combination of the earlier
# ones: it adds no direction to the space of the fields (C.10).
PIVOT = 1e-16


class Record(eqx.Module):
    """A solved generation as the same-input generations after it see it (module docstring)."""

    m: jax.Array
    b: jax.Array
    q: jax.Array
    gamma: jax.Array
    L: jax.Array
    V: jax.Array
    a: jax.Array
    B: jax.Array
    Xi: jax.Array


class Stack(eqx.Module):
    """The records of generations ``0..k-1`` as matrices: lower-triangular ``L``, ``V``, ``B``
    (``k x k``), the symmetric ``Xi``, the vectors ``a, gamma, q`` and the per-coordinate moments
    ``M_jl = E[w_j w_l] = a_j a_l + (B Xi B^T)_jl`` (C.7)."""

    L: jax.Array
    V: jax.Array
    B: jax.Array
    Xi: jax.Array
    a: jax.Array
    gamma: jax.Array
    q: jax.Array
    M: jax.Array

    @classmethod
    def of(cls, records) -> Stack:
        k = len(records)
        pad = lambda row: jnp.pad(row, (0, k - row.shape[0]))
        rows = lambda name: jnp.stack([pad(getattr(r, name)) for r in records])
        Xi_low = rows("Xi")
        Xi = Xi_low + Xi_low.T - jnp.diag(jnp.diag(Xi_low))
        a, B = jnp.stack([r.a for r in records]), rows("B")
        return cls(L=rows("L"), V=rows("V"), B=B, Xi=Xi, a=a, gamma=jnp.stack([r.gamma for r in records]),
                   q=jnp.stack([r.q for r in records]), M=jnp.outer(a, a) + B @ Xi @ B.T)


def project(stack: Stack, inner):
    """``p_l = <rho, e_l>`` from ``inner_l = <rho, w_l>`` (C.10): forward substitution in the Cholesky
    factor, skipping the generations that add no direction."""
    p = []
    for l in range(stack.L.shape[0]):
        pivot = stack.L[l, l]
        alive = pivot**2 > PIVOT * stack.q[l]
        num = inner[l] - sum((stack.L[l, j] * p[j] for j in range(l)), 0.0)
        p.append(jnp.where(alive, num / jnp.where(alive, pivot, 1.0), 0.0))
    return jnp.stack(p)


class Weights(eqx.Module):
    """Generation ``k``'s weights from its conjugates: ``m``, the Cholesky row ``L`` (``l < k``),
    ``sigma2 = L_kk^2``, the responses ``V`` (``l <= k``) and the representation ``a, B``."""

    m: jax.Array
    L: jax.Array
    sigma2: jax.Array
    V: jax.Array
    a: jax.Array
    B: jax.Array


def update(records, gamma, lam, delta, m_hat, V_hat, Xi_row) -> Weights:
    """The weights of generation ``k = len(records)`` (C.5)-(C.10); ``V_hat`` and ``Xi_row`` have
    length ``k + 1`` (``l = 0..k``)."""
    k = len(records)
    s = Stack.of(records)
    c = 1.0 / (lam + V_hat[k])
    v = V_hat[:k]
    a = c * (m_hat - v @ s.a)  # (C.5)
    B = c * (jnp.eye(k + 1, dtype=c.dtype)[k] - jnp.pad(v @ s.B, (0, 1)))
    # responses G_kl = -c sum_{j=l}^{k-1} V_hat_kj G_jl, G_jl = V_jl / (delta gamma_j)           (C.8)
    G = s.V / (delta * s.gamma[:, None])
    V = delta * gamma * jnp.concatenate([-c * (v @ G), c[None]])
    # innovation rho_k = c [Y_k 1_{S_k} + sum_l V_hat_kl w_l 1_{S_l \ S_k}]                      (C.9)
    EYw = m_hat * s.a + s.B @ Xi_row[:k]  # per-coordinate E[Y_k w_j]
    outside = (jnp.minimum(s.gamma[:, None], s.gamma[None, :]) - gamma) * s.M
    rho_w = c * (gamma * EYw + v @ outside)
    rho2 = c**2 * (gamma * (m_hat**2 + Xi_row[k]) + v @ outside @ v)
    p = project(s, rho_w)
    return Weights(m=gamma * a, L=-c * (v @ s.L) + p, sigma2=rho2 - jnp.sum(p**2), V=V, a=a, B=B)  # (C.10)


def solved_conjugates(records, gamma, lam, delta, m, V):
    """``(m_hat, V_hat_k.)`` of a solved generation ``k = len(records)`` from its ``m`` and its responses
    ``V_k0..V_kk``: (C.5) and (C.8) solved for them (``G`` is lower triangular with a positive diagonal)."""
    k = len(records)
    s = Stack.of(records)
    c = V[k] / (delta * gamma)
    G = s.V / (delta * s.gamma[:, None])
    v = jax.scipy.linalg.solve_triangular(G.T, -V[:k] / (delta * gamma * c), lower=False)
    m_hat = m / (gamma * c) + v @ s.a
    return m_hat, jnp.concatenate([v, (1.0 / c - lam)[None]])


def record_of(weights: Weights, b, gamma, Xi_row) -> Record:
    """The ``Record`` of a solved generation from its ``Weights``."""
    q = jnp.sum(weights.L**2) + weights.sigma2
    L = jnp.concatenate([weights.L, safe_sqrt(weights.sigma2)[None]])
    return Record(m=weights.m, b=b, q=q, gamma=jnp.asarray(gamma, q.dtype), L=L, V=weights.V, a=weights.a,
                  B=weights.B, Xi=Xi_row)
