"""Observables from overlaps: test error, bivariate normal CDF, teacher-student agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import multivariate_normal, norm

from kdjax import agreement, gen_error
from kdjax._observables import bivariate_normal_cdf

bvn = jax.jit(bivariate_normal_cdf)
bvn_grad = jax.jit(jax.grad(bivariate_normal_cdf, argnums=(0, 1, 2)))
agree = jax.jit(agreement)

CORRS = [-0.999, -0.99, -0.93, -0.9, -0.5, 0.0, 0.3, 0.9, 0.93, 0.95, 0.999]
POINTS = [-3.0, -1.0, -0.2, 0.0, 0.5, 1.7, 3.0]


def scipy_bvn(h, k, corr):
    return multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, corr], [corr, 1.0]]).cdf([h, k])


def quad_bvn(h, k, corr):
    """``int_-inf^h phi(x) Phi((k - corr x) / sqrt(1 - corr^2)) dx`` by adaptive quadrature."""
    s = np.sqrt(1.0 - corr * corr)
    kink = k / corr  # the inner CDF jumps from 0 to 1 over a width ~s around here
    pts = [x for x in (kink - 30 * s, kink, kink + 30 * s) if -12.0 < x < h] or None
    return quad(
        lambda x: norm.pdf(x) * norm.cdf((k - corr * x) / s),
        -12.0,
        h,
        points=pts,
        epsabs=1e-16,
        epsrel=1e-14,
        limit=500,
    )[0]


# --- gen_error ------------------------------------------------------------------------------


def test_gen_error_matches_monte_carlo_of_gaussian_fields():
    m, q, b, delta, rho = 0.7, 1.3, -0.25, 0.8, 0.3
    rng = np.random.default_rng(0)
    n = 1_000_000
    y = np.where(rng.random(n) < rho, 1.0, -1.0)
    h = y * m + b + np.sqrt(delta * q) * rng.standard_normal(n)
    mc = np.mean(np.sign(h) != y)
    sigma = np.sqrt(mc * (1 - mc) / n)
    assert abs(float(gen_error(m, q, b, delta, rho)) - mc) < 4 * sigma


def test_gen_error_balanced_unbiased_is_phi_of_minus_snr():
    m, q, delta = 0.6, 0.9, 1.7
    expected = norm.cdf(-m / np.sqrt(delta * q))
    assert float(gen_error(m, q, 0.0, delta, 0.5)) == pytest.approx(expected, rel=1e-14)


# --- bivariate normal CDF ---------------------------------------------------------------------


def test_bivariate_cdf_matches_scipy_on_grid():
    h, k, c = np.meshgrid(POINTS, POINTS, CORRS, indexing="ij")
    ours = np.asarray(jax.jit(jax.vmap(bivariate_normal_cdf))(h.ravel(), k.ravel(), c.ravel()))
    ref = np.array([scipy_bvn(*x) for x in zip(h.ravel(), k.ravel(), c.ravel())])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-14)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_bivariate_cdf_near_unit_corr_matches_adaptive_quadrature():
    cases = [(-1.0, -1.2), (0.3, 0.3), (1.5, -1.4), (-0.4, 0.45)]
    for corr in (-0.999999, 0.9251, 0.99999, 0.9999999):
        for h, k in cases:
            assert float(bvn(h, k, corr)) == pytest.approx(quad_bvn(h, k, corr), abs=1e-14)


def test_bivariate_cdf_degenerate_corr_limits_are_exact():
    for h in POINTS:
        for k in POINTS:
            assert float(bvn(h, k, 1.0)) == pytest.approx(norm.cdf(min(h, k)), abs=1e-16)
            lower = max(0.0, norm.cdf(h) - norm.cdf(-k))
            assert float(bvn(h, k, -1.0)) == pytest.approx(lower, abs=1e-16)
            # continuity into the limit
            assert float(bvn(h, k, 1.0 - 1e-13)) == pytest.approx(norm.cdf(min(h, k)), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    h=st.floats(-6.0, 6.0),
    k=st.floats(-6.0, 6.0),
    corr=st.floats(-1.0, 1.0),
)
def test_bivariate_cdf_identities(h, k, corr):
    f = float(bvn(h, k, corr))
    assert -1e-15 <= f <= min(norm.cdf(h), norm.cdf(k)) + 1e-15
    assert f == pytest.approx(float(bvn(k, h, corr)), abs=1e-15)  # exchange symmetry
    # reflection Y -> -Y: P(X <= h, Y <= k) + P(X <= h, Y > k) = Phi(h)
    assert f + float(bvn(h, -k, -corr)) == pytest.approx(norm.cdf(h), abs=2e-15)


def test_bivariate_cdf_independent_case_factorises():
    for h in POINTS:
        for k in POINTS:
            assert float(bvn(h, k, 0.0)) == pytest.approx(norm.cdf(h) * norm.cdf(k), abs=1e-16)


GRAD_POINTS = [
    (0.3, -0.8, 0.0),
    (0.3, -0.8, 0.5),
    (-1.1, 0.4, -0.9),
    (0.7, 0.7, 0.93),  # h = k, expansion branch (|h - k| kink of the pieces)
    (0.7, -0.7, -0.95),  # h = -k, reflected expansion branch
    (0.2, 1.0, 0.95),
    (-0.5, -0.3, 0.999),
    (1.2, -1.0, -0.999),
]


@pytest.mark.parametrize("h, k, corr", GRAD_POINTS)
def test_bivariate_cdf_gradient_matches_closed_form_and_finite_differences(h, k, corr):
    gh, gk, gc = (float(g) for g in bvn_grad(h, k, corr))
    s = np.sqrt(1.0 - corr * corr)
    assert gh == pytest.approx(norm.pdf(h) * norm.cdf((k - corr * h) / s), abs=1e-13)
    assert gk == pytest.approx(norm.pdf(k) * norm.cdf((h - corr * k) / s), abs=1e-13)
    density = np.exp(-(h * h - 2 * corr * h * k + k * k) / (2 * s * s)) / (2 * np.pi * s)
    assert gc == pytest.approx(density, rel=1e-10, abs=1e-13)
    eps = 1e-6
    fd = [
        (float(bvn(h + eps, k, corr)) - float(bvn(h - eps, k, corr))) / (2 * eps),
        (float(bvn(h, k + eps, corr)) - float(bvn(h, k - eps, corr))) / (2 * eps),
    ]
    e_c = min(eps, (1.0 - abs(corr)) / 10)
    fd.append((float(bvn(h, k, corr + e_c)) - float(bvn(h, k, corr - e_c))) / (2 * e_c))
    np.testing.assert_allclose([gh, gk, gc], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("corr", [0.95, 0.999, -0.999, 1.0, -1.0])
def test_bivariate_cdf_gradients_finite_near_and_at_unit_corr(corr):
    for h, k in [(0.4, 0.4), (0.4, -0.4), (-2.0, 1.0), (3.0, 2.0)]:
        assert np.all(np.isfinite([float(g) for g in bvn_grad(h, k, corr)]))


# --- agreement --------------------------------------------------------------------------------

TEACHER = dict(m_t=0.8, q_t=1.2, b_t=0.1)


def monte_carlo_agreement(m_t, q_t, b_t, m_s, q_s, r, b_s, delta, rho, n=1_000_000, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < rho, 1.0, -1.0)
    cov = delta * np.array([[q_t, r], [r, q_s]])
    noise = rng.standard_normal((n, 2)) @ np.linalg.cholesky(cov).T
    h_t = y * m_t + b_t + noise[:, 0]
    h_s = y * m_s + b_s + noise[:, 1]
    return np.mean(np.sign(h_t) == np.sign(h_s))


@pytest.mark.parametrize(
    "student, delta, rho",
    [
        (dict(m_s=0.6, q_s=0.9, r=0.8, b_s=-0.2), 0.7, 0.3),
        (dict(m_s=0.75, q_s=1.1, r=1.13, b_s=0.05), 1.0, 0.5),  # corr = 0.98
        (dict(m_s=0.2, q_s=0.5, r=-0.3, b_s=0.3), 1.5, 0.8),  # anti-correlated
    ],
)
def test_agreement_matches_monte_carlo(student, delta, rho):
    args = dict(TEACHER, **student, delta=delta, rho=rho)
    mc = monte_carlo_agreement(**args)
    sigma = np.sqrt(mc * (1 - mc) / 1_000_000)
    assert abs(float(agree(**args)) - mc) < 4 * sigma


def test_agreement_is_exactly_one_for_identical_classifiers():
    cases = [(0.8, 1.2, 0.1, 0.7, 0.3), (0.3, 0.05, -1.0, 2.0, 0.5), (2.0, 7.0, 0.0, 0.1, 0.9)]
    for m, q, b, delta, rho in cases:
        assert float(agree(m, q, b, m, q, q, b, delta, rho)) == 1.0
        f32 = [jnp.float32(x) for x in (m, q, b, m, q, q, b, delta, rho)]
        assert float(agree(*f32)) == 1.0


def test_agreement_symmetric_under_teacher_student_exchange():
    t, s = (0.8, 1.2, 0.1), (0.6, 0.9, -0.2)
    a = float(agree(t[0], t[1], t[2], s[0], s[1], 0.8, s[2], 0.7, 0.3))
    b = float(agree(s[0], s[1], s[2], t[0], t[1], 0.8, t[2], 0.7, 0.3))
    assert a == pytest.approx(b, abs=1e-15)


def test_agreement_safe_when_roundoff_makes_covariance_indefinite():
    m, q, b = 0.8, 1.2, 0.1
    exact = float(agree(m, q, b, m, q, q, b, 0.7, 0.3))
    bumped = float(agree(m, q, b, m, q, q * (1 + 1e-14), b, 0.7, 0.3))
    assert np.isfinite(bumped) and bumped == pytest.approx(exact, abs=1e-12)
    # student slightly different, corr rounded just above 1
    nearly = float(agree(m, q, b, m * (1 + 1e-9), q, q * (1 + 1e-14), b, 0.7, 0.3))
    assert np.isfinite(nearly) and 1 - 1e-6 < nearly <= 1.0


def test_agreement_gradients_finite_and_match_finite_differences():
    x0 = np.array([0.8, 1.2, 0.1, 0.6, 0.9, 0.8, -0.2, 0.7, 0.3])
    grad = jax.jit(jax.grad(lambda x: agreement(*x)))
    grads = np.array(grad(jnp.asarray(x0)))
    eps = 1e-6
    shifted = [
        [float(agree(*(x0 + sign * eps * e).tolist())) for e in np.eye(9)] for sign in (1.0, -1.0)
    ]
    fd = (np.array(shifted[0]) - np.array(shifted[1])) / (2 * eps)
    np.testing.assert_allclose(grads, fd, rtol=1e-6, atol=1e-9)
    # at coincidence (corr clipped to 1) and close to it
    for r in (1.2, 1.2 * (1 - 1e-6)):
        x = jnp.array([0.8, 1.2, 0.1, 0.8, 1.2, r, 0.1, 0.7, 0.3])
        assert np.all(np.isfinite(np.array(grad(x))))


def test_agreement_under_jit_vmap_matches_pointwise():
    rng = np.random.default_rng(1)
    n = 16
    q_t, q_s = rng.uniform(0.2, 2.0, n), rng.uniform(0.2, 2.0, n)
    r = rng.uniform(-0.99, 0.99, n) * np.sqrt(q_t * q_s)
    m_t, b_t, m_s, b_s = rng.normal(size=(4, n))
    cols = [m_t, q_t, b_t, m_s, q_s, r, b_s, rng.uniform(0.2, 2.0, n), rng.uniform(0.1, 0.9, n)]
    batched = np.asarray(jax.jit(jax.vmap(agreement))(*cols))
    pointwise = np.array([float(agree(*map(float, row))) for row in zip(*cols)])
    np.testing.assert_allclose(batched, pointwise, rtol=0, atol=1e-15)
    assert np.all((batched >= 0) & (batched <= 1))


def test_float32_smoke():
    f32 = jnp.float32
    h, k = jnp.linspace(-3, 3, 7, dtype=f32), jnp.linspace(2, -2, 7, dtype=f32)
    corrs = np.repeat([-1.0, -0.97, 0.0, 0.5, 0.97, 1.0], 7)
    hh, kk = np.tile(np.asarray(h), 6), np.tile(np.asarray(k), 6)
    out = bvn(jnp.asarray(hh, f32), jnp.asarray(kk, f32), jnp.asarray(corrs, f32))
    assert out.dtype == jnp.float32 and np.all(np.isfinite(out))
    def reference(a, b, c):
        if c == 1:
            return norm.cdf(min(a, b))
        if c == -1:
            return max(0.0, norm.cdf(a) - norm.cdf(-b))
        return scipy_bvn(a, b, c)

    ref = [reference(a, b, c) for a, b, c in zip(hh.astype(float), kk.astype(float), corrs)]
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-6)
    g = bvn_grad(f32(0.3), f32(0.2), f32(0.99))
    assert all(x.dtype == jnp.float32 and np.isfinite(x) for x in g)
    args = [f32(x) for x in (0.8, 1.2, 0.1, 0.6, 0.9, 0.8, -0.2, 0.7, 0.3)]
    a32 = agree(*args)
    e32 = gen_error(*[f32(x) for x in (0.8, 1.2, 0.1, 0.7, 0.3)])
    assert a32.dtype == jnp.float32 and e32.dtype == jnp.float32
    assert float(a32) == pytest.approx(float(agree(*[float(x) for x in args])), abs=1e-5)
