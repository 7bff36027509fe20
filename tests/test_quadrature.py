"""Quadrature rules and safe primitives (src/kdjax/_quadrature.py) against closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax._quadrature import gauss_hermite, gauss_legendre, safe_sqrt, sinh_rule


@pytest.mark.parametrize("k", [0, 2, 4, 10])
def test_gauss_hermite_gives_the_normal_moments(k):
    xi, w = gauss_hermite(32)
    exact = float(np.prod(np.arange(k - 1, 0, -2))) if k else 1.0  # (k - 1)!!
    assert float(jnp.sum(w * xi**k)) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("center", [-3.0, 0.0, 2.5])
def test_sinh_rule_integrates_a_step_refined_at_its_jump(center):
    """``E[sigmoid((xi - c) / 0.01)] ~= Phi(-c)``: a near-step where the rule is centred."""
    xi, w = sinh_rule(jnp.asarray(center), jnp.asarray(0.01), 256)
    value = jnp.sum(w * jax.nn.sigmoid((xi - center) / 0.01))
    assert float(value) == pytest.approx(float(jax.scipy.stats.norm.cdf(-center)), abs=1e-5)


def test_gauss_legendre_is_exact_for_polynomials():
    x, w = gauss_legendre(jnp.asarray(-1.0), jnp.asarray(2.0), 8)
    assert float(jnp.sum(w * x**5)) == pytest.approx((2.0**6 - 1.0) / 6.0, rel=1e-13)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_safe_sqrt_has_finite_derivatives_at_zero(dtype):
    zero = jnp.asarray(0.0, dtype)
    assert float(jax.grad(safe_sqrt)(zero)) == 0.0
    assert float(jax.grad(safe_sqrt)(-zero - 1e-30)) == 0.0
    assert float(jax.grad(safe_sqrt)(jnp.asarray(4.0, dtype))) == pytest.approx(0.25)
    assert jax.grad(safe_sqrt)(zero).dtype == dtype and float(safe_sqrt(zero)) < 1e-18
    assert float(jax.grad(jax.grad(safe_sqrt))(jnp.asarray(4.0, dtype))) == pytest.approx(-1 / 32)
