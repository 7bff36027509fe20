"""Bayes-optimal baseline and separability threshold of the Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog, minimize_scalar
from scipy.stats import norm

import kdjax
from kdjax import (
    Mixture,
    Student,
    Teacher,
    bayes_optimal_error,
    bayes_optimal_overlaps,
    gen_error,
    separability_threshold,
    solve_teacher,
)
from kdjax._bayes import free_entropy
from kdjax._bayes_amp import bayes_amp_error

bo_error = jax.jit(bayes_optimal_error)
bo_overlaps = jax.jit(bayes_optimal_overlaps)

# --- Bayes-optimal classifier -----------------------------------------------------------------


@pytest.mark.parametrize("alpha, delta", [(0.1, 1.0), (1.0, 1.0), (3.0, 0.5), (10.0, 2.0)])
def test_bayes_error_balanced_closed_form(alpha, delta):
    expected = norm.cdf(-np.sqrt(alpha / (delta * (alpha + delta))))
    assert float(bo_error(Mixture(alpha, delta, 0.5))) == pytest.approx(expected, rel=1e-13)


def test_bayes_error_decreases_with_alpha_and_increases_with_delta():
    alphas = jnp.geomspace(0.05, 50.0, 30)
    err = jax.jit(jax.vmap(lambda a: bayes_optimal_error(Mixture(a, 0.8, 0.3))))(alphas)
    assert np.all(np.diff(np.asarray(err)) < 0)
    deltas = jnp.geomspace(0.05, 20.0, 30)
    err = jax.jit(jax.vmap(lambda d: bayes_optimal_error(Mixture(2.0, d, 0.3))))(deltas)
    assert np.all(np.diff(np.asarray(err)) > 0)


def test_bayes_error_symmetric_under_class_swap():
    for alpha, delta, rho in [(0.5, 1.0, 0.2), (2.0, 0.3, 0.35), (7.0, 2.0, 0.9)]:
        a = float(bo_error(Mixture(alpha, delta, rho)))
        b = float(bo_error(Mixture(alpha, delta, 1.0 - rho)))
        assert a == pytest.approx(b, rel=1e-13)
        assert float(bo_overlaps(Mixture(alpha, delta, rho)).b) == pytest.approx(
            -float(bo_overlaps(Mixture(alpha, delta, 1.0 - rho)).b), rel=1e-13
        )


def test_bayes_error_tends_to_oracle_with_known_cluster_direction():
    delta, rho = 1.0, 0.3
    b = 0.5 * delta * np.log(rho / (1 - rho))  # likelihood-ratio threshold with v known
    sd = np.sqrt(delta)
    oracle = rho * norm.cdf(-(1 + b) / sd) + (1 - rho) * norm.cdf(-(1 - b) / sd)
    assert float(bo_error(Mixture(1e9, delta, rho))) == pytest.approx(oracle, rel=1e-7)


def test_bayes_bias_is_optimal_for_its_overlaps():
    mix = Mixture(1.3, 0.7, 0.25)
    m, q, b = (float(x) for x in bo_overlaps(mix))
    err = jax.jit(gen_error)
    d_eps_db = jax.jit(jax.grad(gen_error, argnums=2))(m, q, b, mix.delta, mix.rho)
    assert abs(float(d_eps_db)) < 1e-13
    eps = float(err(m, q, b, mix.delta, mix.rho))
    for shift in (-0.1, 0.1):
        assert float(err(m, q, b + shift, mix.delta, mix.rho)) > eps


def simulate_posterior_mean_classifier(N, alpha, delta, rho, seed):
    """Test error, m, q of the exact finite-N Bayes classifier on one sampled training set."""
    rng = np.random.default_rng(seed)
    n = int(round(alpha * N))
    v = rng.standard_normal(N)
    y = np.where(rng.random(n) < rho, 1.0, -1.0)
    x = y[:, None] * v / np.sqrt(N) + np.sqrt(delta) * rng.standard_normal((n, N))
    a = n / N
    # posterior N(v_hat, delta / (a + delta) I), v_hat = sum_i y_i x_i / (sqrt(N) (a + delta))
    v_hat = (y @ x) / (np.sqrt(N) * (a + delta))
    # posterior predictive: x | y ~ N(y v_hat / sqrt(N), delta (1 + 1 / (N (a + delta))) I)
    b = 0.5 * delta * (1.0 + 1.0 / (N * (a + delta))) * np.log(rho / (1 - rho))
    m, q = v_hat @ v / N, v_hat @ v_hat / N
    scale = np.sqrt(delta * q)  # h | y ~ N(y m + b, delta q) exactly, given v and v_hat
    err = rho * norm.cdf(-(m + b) / scale) + (1 - rho) * norm.cdf(-(m - b) / scale)
    return err, m, q


@pytest.mark.parametrize("alpha, delta, rho", [(1.5, 1.0, 0.3), (0.6, 0.5, 0.8)])
def test_bayes_error_matches_finite_n_posterior_mean_classifier(alpha, delta, rho):
    runs = np.array(
        [simulate_posterior_mean_classifier(1000, alpha, delta, rho, s) for s in range(12)]
    )
    mean, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    mix = Mixture(alpha, delta, rho)
    m, q, _ = bo_overlaps(mix)
    theory = np.array([float(bo_error(mix)), float(m), float(q)])
    assert np.all(np.abs(mean - theory) < 4 * se + 2e-3), (mean, se, theory)


def test_bayes_under_jit_vmap_over_mixture_pytree():
    points = [(0.5, 1.0, 0.5), (1.0, 0.5, 0.2), (4.0, 2.0, 0.7)]
    mix = Mixture(*(jnp.array(c) for c in zip(*points)))
    axes = jax.tree_util.tree_map(lambda x: 0 if np.ndim(x) else None, mix)  # label_noise stays a scalar
    batched = jax.jit(jax.vmap(bayes_optimal_error, in_axes=(axes,)))(mix)
    single = [float(bo_error(Mixture(*p))) for p in points]
    np.testing.assert_allclose(np.asarray(batched), single, rtol=1e-14)
    g = jax.jit(jax.grad(lambda a: bayes_optimal_error(Mixture(a, 1.0, 0.3))))(2.0)
    assert np.isfinite(g) and g < 0


# --- separability threshold ---------------------------------------------------------------------


def reference_threshold(delta, rho):
    """max_{m, b} (1 - m^2) / E_y g((m + y b) / sqrt(delta)), independently, with scipy."""

    def g(t):
        return (1 + t * t) * norm.sf(t) - t * norm.pdf(t)

    def denominator(m, b):
        return rho * g((m + b) / np.sqrt(delta)) + (1 - rho) * g((m - b) / np.sqrt(delta))

    def best_b(m):  # convex in b
        res = minimize_scalar(lambda b: denominator(m, b), bracket=(-1.0, 1.0), tol=1e-12)
        return res.fun

    res = minimize_scalar(
        lambda m: -(1 - m * m) / best_b(m),
        bounds=(0.0, 1.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return -res.fun


REFERENCE_POINTS = [(1.0, 0.5), (0.5, 0.5), (1.0, 0.3), (0.2, 0.15), (5.0, 0.6), (0.05, 0.5)]
GRID_DELTAS = np.geomspace(0.1, 10.0, 12)
GRID_RHOS = np.array([0.05, 0.2, 0.35, 0.5])


@pytest.fixture(scope="module")
def batch():
    """One jit(vmap) evaluation over every (delta, rho) the tests below need (a single compile)."""
    d, r = np.meshgrid(GRID_DELTAS, GRID_RHOS, indexing="ij")
    ref_d, ref_r = (np.array(c) for c in zip(*REFERENCE_POINTS))
    deltas = np.concatenate([ref_d, d.ravel(), d.ravel()])
    rhos = np.concatenate([ref_r, r.ravel(), 1.0 - r.ravel()])
    values = np.asarray(jax.jit(jax.vmap(separability_threshold))(deltas, rhos))
    n_ref = len(REFERENCE_POINTS)
    grid = values[n_ref:].reshape(2, *d.shape)
    return dict(
        reference=values[:n_ref],
        grid=grid[0],
        grid_swapped=grid[1],
        deltas=deltas,
        rhos=rhos,
        all=values,
    )


def test_separability_threshold_matches_independent_maximisation(batch):
    ref = np.array([reference_threshold(d, r) for d, r in REFERENCE_POINTS])
    np.testing.assert_allclose(batch["reference"], ref, rtol=1e-8)


def test_separability_threshold_delta_one_balanced_is_about_3_70():
    assert float(separability_threshold(1.0, 0.5)) == pytest.approx(3.70, abs=5e-3)


def test_separability_threshold_large_noise_recovers_cover_capacity():
    assert float(separability_threshold(1e6, 0.5)) == pytest.approx(2.0, rel=1e-5)


def test_separability_threshold_symmetric_in_rho_and_decreasing_in_delta(batch):
    grid = batch["grid"]
    np.testing.assert_allclose(grid, batch["grid_swapped"], rtol=1e-10)
    assert np.all(np.diff(grid, axis=0) < 0)  # larger noise -> smaller threshold
    assert np.all(np.diff(grid, axis=1) < 0)  # imbalance raises the threshold (rho -> 1/2)


def test_separability_threshold_vmap_matches_scalar_calls(batch):
    for i in (0, 3, 20, 60, 101):
        scalar = float(separability_threshold(float(batch["deltas"][i]), float(batch["rhos"][i])))
        assert batch["all"][i] == pytest.approx(scalar, rel=1e-12)


def test_separability_threshold_gradient_by_envelope_theorem():
    g_delta, g_rho = jax.grad(separability_threshold, argnums=(0, 1))(1.0, 0.3)
    eps = 1e-6
    s = separability_threshold
    fd_delta = (float(s(1.0 + eps, 0.3)) - float(s(1.0 - eps, 0.3))) / (2 * eps)
    fd_rho = (float(s(1.0, 0.3 + eps)) - float(s(1.0, 0.3 - eps))) / (2 * eps)
    assert float(g_delta) == pytest.approx(fd_delta, rel=1e-6)
    assert float(g_rho) == pytest.approx(fd_rho, rel=1e-6)


def test_separability_threshold_float32_smoke():
    out32 = separability_threshold(jnp.float32(1.0), jnp.float32(0.5))
    assert out32.dtype == jnp.float32
    assert float(out32) == pytest.approx(float(separability_threshold(1.0, 0.5)), rel=1e-5)


def is_linearly_separable(N, alpha, delta, rho, seed):
    """Is there (w, b) with y_i (w . x_i / sqrt(N) + b) >= 1 for all i?  LP feasibility."""
    rng = np.random.default_rng(seed)
    n = int(round(alpha * N))
    v = rng.standard_normal(N)
    y = np.where(rng.random(n) < rho, 1.0, -1.0)
    x = y[:, None] * v / np.sqrt(N) + np.sqrt(delta) * rng.standard_normal((n, N))
    a_ub = -y[:, None] * np.hstack([x / np.sqrt(N), np.ones((n, 1))])
    free = [(None, None)] * (N + 1)
    res = linprog(np.zeros(N + 1), A_ub=a_ub, b_ub=-np.ones(n), bounds=free, method="highs-ipm")
    if res.status in (0, 2):
        return res.status == 0
    # numerical trouble: phase-one form, minimise the total slack (zero iff separable)
    c = np.r_[np.zeros(N + 1), np.ones(n)]
    a_slack = np.hstack([a_ub, -np.eye(n)])
    res = linprog(c, A_ub=a_slack, b_ub=-np.ones(n), bounds=free + [(0, None)] * n)
    assert res.status == 0, res.message
    return res.fun < 1e-7


@pytest.mark.parametrize("rho", [0.5, 0.3])
def test_separability_threshold_against_linear_programming(rho):
    delta, N = 1.0, 200
    alpha_star = float(separability_threshold(delta, rho))
    below = [is_linearly_separable(N, 0.8 * alpha_star, delta, rho, s) for s in range(3)]
    above = [is_linearly_separable(N, 1.25 * alpha_star, delta, rho, 100 + s) for s in range(3)]
    assert sum(below) >= 2 and sum(above) <= 1, (below, above)


# --- Bayes-optimal classifier with label noise (docs/bayes.md) ---------------------------------

AMP_POINTS = [(2.0, 1.0, 0.5, 0.2), (3.0, 0.5, 0.3, 0.1), (1.0, 1.0, 0.5, 0.3)]
CLEAN_POINTS = [(2.0, 1.0, 0.5), (3.0, 0.5, 0.3), (0.6, 0.5, 0.8), (1.5, 1.0, 0.3)]
MONOTONE_BASES = [(2.0, 1.0, 0.5), (1.0, 0.5, 0.2), (0.4, 1.0, 0.7)]
MONOTONE_ETAS = np.linspace(0.0, 0.49, 12)
ERM_POINTS = AMP_POINTS + [(0.5, 1.0, 0.7, 0.05), (5.0, 2.0, 0.5, 0.4)]
HALF_BASES = [(2.0, 1.0, 0.5), (0.5, 1.0, 0.5), (1.0, 1.0, 0.2), (0.3, 0.5, 0.8)]
NEAR_HALF = 0.5 - 1e-7
KD_POINTS = [(1.0, 1.0, 0.5, 0.1), (3.0, 0.5, 0.3, 0.2), (2.0, 1.0, 0.5, 0.3), (5.0, 2.0, 0.4, 0.05)]
GRAD_POINT = (2.0, 1.0, 0.3, 0.2)
FD_STEP = 1e-4


def _noisy_error_and_grads(alpha, delta, rho, eta):
    def err(a, d, r, e):
        o = bayes_optimal_overlaps(Mixture(a, d, r, e), throw=False)
        return gen_error(o.m, o.q, o.b, d, r), (o.m, o.label_overlap, o.converged)

    (value, aux), grads = jax.value_and_grad(err, argnums=(0, 1, 2, 3), has_aux=True)(
        alpha, delta, rho, eta)
    return value, aux, grads


@pytest.fixture(scope="module")
def noisy():
    """One jit(vmap) solve (values and gradients) of every noisy mixture the tests below need."""
    rows = {}
    rows["amp"] = AMP_POINTS
    rows["clean"] = [p + (0.0,) for p in CLEAN_POINTS]  # the noisy path at eta = 0
    rows["tiny"] = [p + (1e-12,) for p in CLEAN_POINTS]
    rows["monotone"] = [b + (e,) for b in MONOTONE_BASES for e in MONOTONE_ETAS]
    rows["erm"] = ERM_POINTS
    rows["half"] = [b + (NEAR_HALF,) for b in HALF_BASES]
    rows["kd"] = KD_POINTS
    rows["grad"] = [GRAD_POINT]
    for i in range(4):  # central differences in alpha, delta, rho, eta
        for sign in (1, -1):
            shifted = list(GRAD_POINT)
            shifted[i] += sign * FD_STEP
            rows["grad"].append(tuple(shifted))
    points = [p for name in rows for p in rows[name]]
    cols = [jnp.asarray(c, dtype=jnp.float64) for c in zip(*points)]
    value, (m, label_overlap, ok), grads = jax.jit(jax.vmap(_noisy_error_and_grads))(*cols)
    assert np.all(np.asarray(ok)), "a Bayes-optimal fixed point did not converge"
    out, start = {}, 0
    for name, block in rows.items():
        stop = start + len(block)
        out[name] = {"error": np.asarray(value[start:stop]), "m": np.asarray(m[start:stop]),
                     "label_overlap": np.asarray(label_overlap[start:stop]),
                     "grads": np.stack([np.asarray(g[start:stop]) for g in grads], axis=-1)}
        start = stop
    return out


def test_noisy_path_at_zero_noise_is_the_closed_form(noisy):
    closed = np.array([float(bo_error(Mixture(*p))) for p in CLEAN_POINTS])
    closed_m = np.array([float(bo_overlaps(Mixture(*p)).m) for p in CLEAN_POINTS])
    np.testing.assert_allclose(noisy["clean"]["error"], closed, rtol=0, atol=1e-10)
    np.testing.assert_allclose(noisy["clean"]["m"], closed_m, rtol=0, atol=1e-10)
    np.testing.assert_allclose(noisy["clean"]["label_overlap"], 1.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(noisy["tiny"]["error"], closed, rtol=0, atol=1e-10)  # continuity


def test_clean_mixture_keeps_the_closed_form_exactly():
    for alpha, delta, rho in CLEAN_POINTS:
        o = bayes_optimal_overlaps(Mixture(alpha, delta, rho))
        c = alpha / (alpha + delta)
        assert float(o.m) == c and float(o.q) == pytest.approx(c, rel=1e-15)
        assert bool(o.converged) and float(o.residual) == 0.0


def test_noisy_fixed_point_matches_independent_iteration(noisy):
    """Eqs. 3.3-3.5 iterated with numpy (Gauss-Hermite, 200 nodes) from the clean overlap."""
    x, w = np.polynomial.hermite.hermgauss(200)
    x, w = x * np.sqrt(2.0), w / np.sqrt(np.pi)

    def q_y(mu, rho, eta):
        total = 0.0
        for y in (1, -1):
            for yt in (1, -1):
                weight = (rho if y == 1 else 1 - rho) * ((1 - eta) if y == yt else eta)
                h0 = 0.5 * np.log(rho / (1 - rho)) + 0.5 * yt * np.log((1 - eta) / eta)
                total += weight * np.sum(w * y * np.tanh(mu * y + np.sqrt(mu) * x + h0))
        return total

    for (alpha, delta, rho, eta), m_theory in zip(AMP_POINTS, noisy["amp"]["m"]):
        m = alpha / (alpha + delta)
        for _ in range(2000):
            m_hat = alpha * q_y(m / delta, rho, eta) / delta
            m_new = m_hat / (1 + m_hat)
            if abs(m_new - m) < 1e-15:
                break
            m = m_new
        # the driver stops at |F(m) - m| <= 1e-10 (1 + m); the fixed point is then known to that over (1 - F')
        assert m_theory == pytest.approx(m, abs=1e-9)


def test_noisy_error_matches_bayes_amp_at_finite_n(noisy):
    """Bayes-AMP at N = 1000, 8 seeds: the raw means within 3 standard errors plus 3e-3, and the
    paired difference to the clean-label Bayes classifier of the same sample (control variate)
    within 3 standard errors plus 1e-3."""
    for p, err, m, q_y in zip(AMP_POINTS, noisy["amp"]["error"], noisy["amp"]["m"],
                              noisy["amp"]["label_overlap"]):
        runs = [bayes_amp_error(1000, *p, seed=s) for s in range(8)]
        sim = np.array([[r.gen_error, r.m, r.q, r.label_overlap, r.gen_error - r.clean_gen_error]
                        for r in runs])
        assert all(r.change < 1e-8 for r in runs)
        mean, se = sim.mean(axis=0), sim.std(axis=0, ddof=1) / np.sqrt(len(sim))
        clean = float(bo_error(Mixture(*p[:3])))
        theory = np.array([err, m, m, q_y, err - clean])
        allowance = np.array([3e-3, 1e-2, 1e-2, 1e-2, 1e-3])
        assert np.all(np.abs(mean - theory) < 3 * se + allowance), (p, mean, se, theory)


@pytest.mark.slow
def test_noisy_error_matches_bayes_amp_at_larger_n(noisy):
    for p, err in zip(AMP_POINTS, noisy["amp"]["error"]):
        runs = [bayes_amp_error(2000, *p, seed=100 + s) for s in range(16)]
        sim = np.array([[r.gen_error, r.gen_error - r.clean_gen_error] for r in runs])
        mean, se = sim.mean(axis=0), sim.std(axis=0, ddof=1) / np.sqrt(len(sim))
        theory = np.array([err, err - float(bo_error(Mixture(*p[:3])))])
        assert np.all(np.abs(mean - theory) < 3 * se + np.array([2e-3, 5e-4])), (p, mean, se, theory)


def test_noisy_error_increases_with_label_noise(noisy):
    err = noisy["monotone"]["error"].reshape(len(MONOTONE_BASES), len(MONOTONE_ETAS))
    assert np.all(np.diff(err, axis=1) > 0), err
    assert np.all(err < 0.5)


@pytest.mark.parametrize("loss, lams", [
    ("square", (0.01, 1.0)),
    pytest.param("logistic", (0.01, 0.3, 3.0), marks=pytest.mark.slow),  # 12 s of compilation
])
def test_noisy_bayes_error_is_below_every_erm_teacher(noisy, loss, lams):
    cols = [jnp.asarray(c) for c in zip(*ERM_POINTS)]
    solve = jax.jit(jax.vmap(
        lambda a, d, r, e, lam: solve_teacher(Mixture(a, d, r, e), Teacher(loss, lam), throw=False),
        in_axes=(0, 0, 0, 0, None)))
    for lam in lams:
        out = solve(*cols, lam)
        ok = np.asarray(out.converged)
        assert ok.sum() >= len(ERM_POINTS) - 1, (loss, lam, ok)
        gap = np.asarray(out.gen_error)[ok] - noisy["erm"]["error"][ok]
        assert np.all(gap > 0), (loss, lam, gap)


def unlabelled_error(alpha, delta, rho):
    """Bayes error of the branch m > 0 of the unlabelled (eta = 1/2) equations: Eq. 5.2 with the
    label log-odds h0 = log(rho / (1 - rho)) / 2, the largest root (numpy, independent)."""
    from scipy.optimize import brentq

    x, w = np.polynomial.hermite.hermgauss(200)
    x, w = x * np.sqrt(2.0), w / np.sqrt(np.pi)
    h0 = 0.5 * np.log(rho / (1 - rho))

    def F(m):
        mu = m / delta
        q_y = sum(p * y * np.sum(w * np.tanh(mu * y + np.sqrt(mu) * x + h0))
                  for y, p in ((1, rho), (-1, 1 - rho)))
        m_hat = alpha * q_y / delta
        return m_hat / (1 + m_hat)

    top = alpha / (alpha + delta)
    if F(1e-9) - 1e-9 <= 0:  # no positive root: m = 0
        m = 0.0
    else:
        m = brentq(lambda m: F(m) - m, 1e-9, top, xtol=1e-14)
    if m == 0.0:
        return 0.5
    b = 0.5 * delta * np.log(rho / (1 - rho))
    s = np.sqrt(delta * m)
    return rho * norm.cdf(-(m + b) / s) + (1 - rho) * norm.cdf(-(m - b) / s)


def test_noise_to_one_half_approaches_the_unlabelled_limit(noisy):
    err = noisy["half"]["error"]
    for (alpha, delta, rho), e in zip(HALF_BASES, err):
        limit = unlabelled_error(alpha, delta, rho)
        assert e == pytest.approx(limit, abs=2e-5), (alpha, delta, rho)
    # symmetric classes: 1/2 below the spectral threshold alpha = delta^2, better above it
    assert err[0] < 0.5 - 0.1 and err[1] == pytest.approx(0.5, abs=2e-5)


def test_noisy_error_gradients_match_central_differences(noisy):
    """jax.grad in (alpha, delta, rho, eta) (implicit differentiation at the fixed point)."""
    g = noisy["grad"]
    e = g["error"]
    fd = (e[1::2] - e[2::2]) / (2 * FD_STEP)
    grad = g["grads"][0]
    assert grad[0] < 0 < grad[3] and grad[1] > 0  # more data helps; noise of either kind hurts
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_noisy_fixed_point_is_the_maximum_of_the_potential(noisy):
    """The potential (3.8) is stationary at the fixed point, and it is the global maximum
    of the potential on the state-evolution curve (scan of m in [0, alpha / (alpha + delta)])."""
    phi = jax.jit(jax.vmap(lambda m, a, d, r, e: free_entropy(m, Mixture(a, d, r, e)),
                           in_axes=(0, None, None, None, None)))
    for p, m_star in zip(AMP_POINTS, noisy["amp"]["m"]):
        top = p[0] / (p[0] + p[1])
        grid = np.linspace(1e-6, top, 401)
        values = np.asarray(phi(jnp.asarray(grid), *p))
        at = float(phi(jnp.asarray([m_star]), *p)[0])
        assert at >= values.max() - 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("point", [AMP_POINTS[0], AMP_POINTS[2]])
def test_amp_is_the_posterior_mean_and_the_bayes_decision_is_linear(point):
    """Posterior sampling (block Gibbs from the planted point, N = 500): the AMP estimate has the
    sampled posterior mean's overlap and error, and the exact Bayes decision from the sampled
    posterior predictive agrees with the linear rule of Eqs. 4.2-4.3 on all but a few inputs."""
    from kdjax._bayes_amp import bayes_gibbs

    r = bayes_gibbs(500, *point, seed=3, sweeps=400, n_test=10000)
    assert abs(r.m - r.amp_m) < 0.015, r
    assert abs(r.gen_error - r.amp_gen_error) < 5e-3, r
    assert r.disagreement < 0.02, r
    assert abs(r.predictive_error - r.linear_error) < 5e-3, r


@pytest.mark.parametrize("student", [pytest.param(Student(0.5, 2.0, 0.3, 0.01), marks=pytest.mark.slow),
                                     Student(1.0, 2.0, 0.0, 0.01, "fresh", 2.0)], ids=["same", "fresh"])
def test_noisy_bayes_error_is_below_kd_students(noisy, student):
    """The KD student of the same noisy mixture never beats the Bayes-optimal error (a grid).

    The Bayes-optimal errors come from the module's one jit(vmap) solve (``noisy``, rows "kd"):
    eager ``bayes_optimal_error`` calls on noisy mixtures compile op by op (~10 s)."""
    for (alpha, delta, rho, eta), bayes in zip(KD_POINTS, noisy["kd"]["error"]):
        mix = Mixture(alpha, delta, rho, eta)
        res = kdjax.solve_student(mix, Teacher("logistic", 0.1), student, throw=False)
        assert bool(res.converged), (alpha, delta, rho, eta)
        assert float(res.gen_error) > float(bayes), (alpha, delta, rho, eta)
