"""Issue 16: the teacher's fixed point converges wherever a unique minimiser exists.

* The hinge teacher's trivial regime (docs/theory.md, Sec. 2.2, (2.7)): where ``w = 0`` is the exact
  minimiser, the state is the closed form ``m = q = V = 0``, ``b = +-1``, solved at the first
  evaluation, traceable and with zero derivatives; the regime does not depend on ``lam``, and just
  below its threshold ``alpha_0`` the solution is non-trivial.
* The five points of the issue (P1, P2 non-trivial; P3, P4, P5 trivial), against simulation.
* A damped iteration that oscillated with period 2 (its reversal went undetected) now converges.
* Property (slow): every loss converges over a wide domain (seeded sample of 30 points).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdjax
from kdjax import Mixture, Teacher, solve_teacher
from kdjax._generations.erm import trivial_hinge

POINTS = {
    "P1": (Mixture(alpha=1.379, delta=0.0577, rho=0.533), Teacher("hinge", 14.0)),
    "P2": (Mixture(alpha=0.0687, delta=0.1007, rho=0.501), Teacher("hinge", 1.82)),
    "P3": (Mixture(alpha=21.27, delta=8.196, rho=0.172), Teacher("hinge", 4.92e-4)),
    "P4": (Mixture(alpha=33.32, delta=3.004, rho=0.864), Teacher("hinge", 48.7)),
    "P5": (Mixture(alpha=11.48, delta=3.285, rho=0.0987, label_noise=0.273), Teacher("hinge", 0.0164)),
}
TRIVIAL = {"P3", "P4", "P5"}


@pytest.mark.parametrize("name", sorted(POINTS))
def test_issue_points_converge(name):
    mix, teacher = POINTS[name]
    r = solve_teacher(mix, teacher, throw=False)
    assert bool(r.converged), (name, r.result, float(r.residual), int(r.iterations))
    assert bool(trivial_hinge(mix)[0]) == (name in TRIVIAL)
    if name in TRIVIAL:
        # the majority classifier, in closed form at the first evaluation
        rho = float(mix.rho)
        assert (float(r.m), float(r.q), float(r.V)) == (0.0, 0.0, 0.0)
        assert float(r.b) == (1.0 if rho > 0.5 else -1.0)
        assert int(r.iterations) == 1 and float(r.residual) == 0.0
        np.testing.assert_allclose(r.gen_error, min(rho, 1.0 - rho), rtol=1e-14)
        eta = float(mix.label_noise)
        minority = min(rho, 1 - rho) * (1 - eta) + max(rho, 1 - rho) * eta  # P(observed label != b)
        np.testing.assert_allclose([r.train_error, r.train_loss], [minority, 2 * minority], rtol=1e-12)
    else:
        assert float(r.q) > 1e-4 and float(r.V) > 1e-4


def test_issue_p1_error_matches_simulation():
    mix, teacher = POINTS["P1"]
    r = solve_teacher(mix, teacher)
    assert abs(float(r.gen_error) - 0.467) < 0.01
    sim = kdjax.simulate_teacher(mix, teacher, n_features=200, seeds=2, n_test=2000)
    assert bool(np.all(sim.converged))
    assert abs(float(np.mean(sim.gen_error)) - float(r.gen_error)) < 0.01


def test_trivial_regime_is_independent_of_the_ridge_and_has_a_threshold_in_alpha():
    # (2.7) at (delta, rho) = (3.004, 0.864): alpha_0 = 14.289 for every lam (simulation: q ~ 1e-22
    # at alpha = 17 and at lam = 1e-3, q = 0.40 at alpha = 10, lam = 0.1)
    flag = lambda a: bool(trivial_hinge(Mixture(a, 3.004, 0.864))[0])
    assert not flag(14.25) and flag(14.3)
    for lam in (1e-3, 0.1, 48.7):
        r = solve_teacher(Mixture(17.0, 3.004, 0.864), Teacher("hinge", lam))
        assert float(r.q) == 0.0 and float(r.b) == 1.0
    # just below the threshold the solution is non-trivial, small, and continuous into it
    near = solve_teacher(Mixture(14.25, 3.004, 0.864), Teacher("hinge", 0.1))
    assert 1e-4 < float(near.q) < 1e-2 and float(near.V) < 0.05
    # balanced classes never give w = 0; nor do other losses (a logistic teacher at P4 learns)
    assert not bool(trivial_hinge(Mixture(33.32, 3.004, 0.5))[0])
    assert float(solve_teacher(POINTS["P4"][0], Teacher("logistic", 48.7)).q) > 0


@pytest.mark.slow
def test_trivial_regime_under_jit_vmap_and_grad():
    def solve(alpha, lam, rho):
        return solve_teacher(Mixture(alpha, 3.004, rho), Teacher("hinge", lam), throw=False)

    alphas = jnp.asarray([33.32, 10.0, 17.0])
    batch = jax.jit(jax.vmap(solve, in_axes=(0, None, None)))(alphas, 0.1, 0.864)
    assert bool(jnp.all(batch.converged))
    np.testing.assert_array_equal(batch.q == 0, [True, False, True])
    # zero derivatives of the state inside the regime, gen_error = 1 - rho there
    grads = jax.grad(lambda a, l, r: (lambda s: s.q + s.m + s.V)(solve(a, l, r)), argnums=(0, 1, 2))(33.32, 48.7, 0.864)
    assert all(float(g) == 0.0 for g in grads)
    np.testing.assert_allclose(jax.grad(lambda r: solve(33.32, 48.7, r).gen_error)(0.864), -1.0, rtol=1e-12)


def test_period_two_oscillation_of_the_damped_iteration_is_damped():
    # the damped iteration oscillated (m, b changing sign, q ~ 1e3) without eta being halved, and
    # stopped at max_steps with residual 5.9; the reversal test compared with the step before last
    mix = Mixture(3.4810044598949434, 0.11469327180276358, 0.4054195825481028, 0.2867009085839576)
    r = solve_teacher(mix, Teacher("hinge", 0.02550430388176833), throw=False)
    assert bool(r.converged) and int(r.iterations) < 200, (r.result, float(r.residual), int(r.iterations))
    np.testing.assert_allclose([r.m, r.q, r.b], [0.85544, 11.244, -0.023543], rtol=1e-4)


def _domain_sample(n=30, seed=16):
    rng = np.random.default_rng(seed)
    logu = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return [dict(alpha=logu(0.05, 30.0), delta=logu(0.05, 8.0), rho=float(rng.uniform(0.05, 0.95)),
                 label_noise=float(rng.uniform(0.0, 0.3)) if rng.uniform() < 0.7 else 0.0, lam=logu(1e-3, 50.0))
            for _ in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["logistic", "square", "hinge"])
def test_teacher_converges_over_the_valid_domain(loss):
    failures = []
    for p in _domain_sample():
        mix, teacher = Mixture(p["alpha"], p["delta"], p["rho"], p["label_noise"]), Teacher(loss, p["lam"])
        if not bool(kdjax.has_finite_minimiser(mix, teacher)):
            continue
        r = solve_teacher(mix, teacher, throw=False)
        ok = bool(r.converged) and all(np.isfinite(float(v)) for v in (r.m, r.q, r.b, r.V, r.gen_error))
        if not ok:
            failures.append((p, str(r.result), float(r.residual), int(r.iterations)))
    assert not failures, failures


@pytest.mark.slow
@pytest.mark.parametrize("name", ["P3", "P4"])
def test_trivial_points_match_simulation(name):
    mix, teacher = POINTS[name]
    sim = kdjax.simulate_teacher(mix, teacher, n_features=200, seeds=2, n_test=5000)
    assert bool(np.all(sim.converged))
    assert float(np.max(sim.q)) < 1e-12 and float(np.max(np.abs(sim.m))) < 1e-6
    np.testing.assert_allclose(sim.b, 1.0 if float(mix.rho) > 0.5 else -1.0, atol=1e-6)
