"""Regimes without a finite minimiser, iteration limits and near-critical points.

The contract (MODEL.md, README): a regime with no finite minimiser is refused by name (eager
``ValueError``) or flagged (``finite_minimiser = False`` under ``jit``/``vmap``, and in simulation);
a solve that does not reach its tolerance raises ``kdjax.SolveError`` (``throw=True``) or says
``converged = False`` with its ``result`` code (``throw=False``), never
a silent number.  Thresholds come from theory: ``alpha*(delta, rho)`` of (2.5) for logistic and hinge
at ``lam_t = 0``, ``alpha > 1`` for the square loss, ``alpha_st > gamma`` for a soft-label student
and ``alpha_st > gamma alpha*(delta / gamma, rho)`` for a hard-label student at ``lam_s = 0``.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import solve_recording
from hypothesis import example, given, settings
from hypothesis import strategies as st

import kdjax
import kdjax.cli
from kdjax import Mixture, SolverConfig, Student, Teacher, solve_student, solve_teacher
from kdjax.simulate import simulate_student, simulate_teacher

pytestmark = pytest.mark.slow  # long-running: `pytest -m slow`

CHEAP = settings(max_examples=25, deadline=None, derandomize=True, database=None)
TOL = SolverConfig().tol


def star(delta, rho):
    return float(kdjax.separability_threshold(delta, rho))


def refused(fn, *args):
    with pytest.raises(ValueError) as err:
        fn(*args)
    text = str(err.value)
    assert "\n" not in text, text
    return text


def loud_or_clean(result, messages, fields):
    """True for a clean converged point (finite, small residual, no warning); a non-converged point
    must have warned.  Returns whether it converged."""
    values = {f: float(getattr(result, f)) for f in fields}
    if bool(result.converged):
        assert not messages, messages
        assert all(math.isfinite(v) for v in values.values()), values
        state = [abs(float(getattr(result, k))) for k in ("m", "q", "r", "b", "V", "V_st")
                 if getattr(result, k, None) is not None]
        assert float(result.residual) <= TOL * (1.0 + max(state)), float(result.residual)
        assert 0.0 <= values["gen_error"] <= 1.0 and values["m"] ** 2 <= values["q"] * (1 + 1e-9), values
        return True
    assert any("did not converge" in m for m in messages), ("silent non-convergence", values)
    return False


T_FIELDS = ("gen_error", "m", "q", "b", "V", "train_error", "train_loss")
S_FIELDS = ("gen_error", "m", "q", "r", "b", "agreement", "train_error", "train_loss")


# --------------------------------------------------------------------------- theory: refused by name


@CHEAP
@given(loss=st.sampled_from(["logistic", "hinge"]), delta=st.floats(0.2, 3.0), rho=st.floats(0.1, 0.9),
       frac=st.floats(0.05, 0.99))
def test_separable_teacher_without_ridge_is_refused_by_name(loss, delta, rho, frac):
    threshold = star(delta, rho)
    mix = Mixture(frac * threshold, delta, rho)
    text = refused(solve_teacher, mix, Teacher(loss, 0.0))
    assert "separable" in text and "lam_t" in text and loss in text, text
    # the same data with a ridge, or a few percent more samples, have a finite minimiser
    assert bool(kdjax.has_finite_minimiser(mix, Teacher(loss, 1e-3)))
    assert bool(kdjax.has_finite_minimiser(Mixture(1.02 * threshold, delta, rho), Teacher(loss, 0.0)))


@CHEAP
@given(alpha=st.floats(0.2, 1.0), delta=st.floats(0.2, 3.0), rho=st.floats(0.1, 0.9))
@example(alpha=1.0, delta=1.0, rho=0.5)  # alpha = 1 is the interpolation threshold itself
def test_square_teacher_without_ridge_at_alpha_up_to_one_is_refused(alpha, delta, rho):
    text = refused(solve_teacher, Mixture(alpha, delta, rho), Teacher("square", 0.0))
    assert "square" in text and "alpha" in text and "lam_t" in text, text
    assert bool(kdjax.has_finite_minimiser(Mixture(alpha, delta, rho), Teacher("square", 1e-6)))


@CHEAP
@given(gamma=st.floats(0.3, 1.0), delta=st.floats(0.2, 3.0), rho=st.floats(0.1, 0.9), frac=st.floats(0.05, 0.99),
       T=st.floats(0.3, 8.0), data=st.sampled_from(["same", "fresh"]))
def test_hard_label_student_without_ridge_on_separable_data_is_refused(gamma, delta, rho, frac, T, data):
    alpha_st = frac * gamma * star(delta / gamma, rho)
    mix = Mixture(alpha_st if data == "same" else 2.0, delta, rho)
    student = Student(gamma, T, 1.0, 0.0, data, alpha_st if data == "fresh" else None)
    text = refused(solve_student, mix, Teacher("logistic", 0.1), student)
    assert "separable" in text and "lam_s" in text, text
    assert bool(kdjax.has_finite_minimiser(mix, student.replace(lam=1e-3)))


@CHEAP
@given(gamma=st.floats(0.3, 1.0), frac=st.floats(0.05, 1.0), a=st.floats(0.0, 0.999), T=st.floats(0.3, 8.0),
       data=st.sampled_from(["same", "fresh"]))
@example(gamma=0.5, frac=1.0, a=0.0, T=1.0, data="same")  # alpha_st = gamma exactly
def test_soft_student_without_ridge_that_interpolates_is_refused(gamma, frac, a, T, data):
    alpha_st = frac * gamma
    mix = Mixture(alpha_st if data == "same" else 2.0, 1.0)
    student = Student(gamma, T, a, 0.0, data, alpha_st if data == "fresh" else None)
    text = refused(solve_student, mix, Teacher("logistic", 0.1), student)
    assert "interpolat" in text and "lam_s" in text and "gamma" in text, text
    assert bool(kdjax.has_finite_minimiser(mix, student.replace(lam=1e-5)))


# --------------------------------------------------------------------------- simulation: flagged


def test_simulated_separable_teacher_has_no_finite_minimiser():
    mix, teacher = Mixture(2.0, 1.0), Teacher("logistic", 0.0)  # alpha* (1, 0.5) = 3.70
    assert "separable" in refused(solve_teacher, mix, teacher)
    sim = simulate_teacher(mix, teacher, n_features=100, seeds=2)
    assert not np.asarray(sim.finite_minimiser).any() and not np.asarray(sim.converged).any()
    with pytest.raises(ValueError, match="no finite minimiser"):
        sim.check()
    with pytest.raises(ValueError, match="no finite minimiser"):
        sim.mean()


@pytest.mark.slow
@pytest.mark.parametrize("alpha,finite", [(2.0, False), (8.0, True)])
def test_simulated_hinge_teacher_finite_minimiser_follows_the_threshold(alpha, finite):
    sim = simulate_teacher(Mixture(alpha, 1.0), Teacher("hinge", 0.0), n_features=100, seeds=2)
    assert np.asarray(sim.finite_minimiser).all() == finite and np.asarray(sim.converged).all() == finite


@pytest.mark.slow
def test_simulated_hard_label_student_on_separable_data_has_no_finite_minimiser():
    mix, teacher, student = Mixture(2.0, 1.0), Teacher("logistic", 0.1), Student(1.0, 1.0, 1.0, 0.0)
    assert "separable" in refused(solve_student, mix, teacher, student)
    sim = simulate_student(mix, teacher, student, n_features=100, seeds=2)
    assert not np.asarray(sim.finite_minimiser).any() and not np.asarray(sim.converged).any()
    with pytest.raises(ValueError, match="student: no finite minimiser"):
        sim.check()


# --------------------------------------------------------------------------- iteration limits

TIGHT = SolverConfig(max_steps=2, tol=1e-14)
# (alpha, delta, rho, lam_t): ordinary, strong ridge, weak ridge, lam = 0 above and below alpha*, near alpha*
LIMIT_POINTS = [(2.0, 1.0, 0.5, 0.1), (0.5, 0.5, 0.3, 1.0), (4.0, 2.0, 0.8, 0.01), (6.0, 1.0, 0.5, 0.0),
                (2.0, 1.0, 0.5, 0.0), (1.02 * 3.7000334556856807, 1.0, 0.5, 0.0)]


@pytest.fixture(scope="module")
def hinge_default():
    return [solve_teacher(Mixture(a, d, r), Teacher("hinge", l)) if l > 0 or a > star(d, r) else None
            for a, d, r, l in LIMIT_POINTS]


def test_iteration_limit_is_never_reported_converged_under_vmap(hinge_default):
    cols = [jnp.asarray([p[i] for p in LIMIT_POINTS]) for i in range(4)]
    batched = jax.jit(jax.vmap(
        lambda a, d, r, l: solve_teacher(Mixture(a, d, r), Teacher("hinge", l), TIGHT, throw=False)))
    res = batched(*cols)
    budget = TIGHT.max_steps + 64 + TIGHT.max_steps  # damped, Newton (fixed 64), damped
    limited = 0
    for i, (a, d, r, l) in enumerate(LIMIT_POINTS):
        finite = l > 0 or a > star(d, r)
        assert bool(res.finite_minimiser[i]) == finite, LIMIT_POINTS[i]
        assert int(res.iterations[i]) <= budget, int(res.iterations[i])
        x = np.array([float(res.m[i]), float(res.q[i]), float(res.V[i]), float(res.b[i])])
        if bool(res.converged[i]):
            assert finite
            assert float(res.residual[i]) <= TIGHT.tol * (1 + np.max(np.abs(x)))
            ref = hinge_default[i]
            np.testing.assert_allclose(x, [float(ref.m), float(ref.q), float(ref.V), float(ref.b)],
                                       rtol=1e-8, atol=1e-10)
        else:
            limited += finite
            # a flagged point: its residual really is above the tolerance, or it has no minimiser
            assert (not finite) or not float(res.residual[i]) <= TIGHT.tol * (1 + np.min(np.abs(x)))
    assert limited >= 1, "the iteration budget bound no point: this test checks nothing"


def test_iteration_limit_raises_when_eager_and_is_coded_without_throw():
    mix, teacher = Mixture(4.0, 2.0, 0.8), Teacher("hinge", 0.01)
    with pytest.raises(kdjax.SolveError, match="did not converge") as err:
        solve_teacher(mix, teacher, TIGHT)
    assert err.value.result == kdjax.RESULTS.max_steps
    r = solve_teacher(mix, teacher, TIGHT, throw=False)
    assert not bool(r.converged) and r.result == kdjax.RESULTS.max_steps and float(r.residual) > TIGHT.tol


@pytest.mark.slow
def test_student_iteration_limit_is_flagged_and_warns():
    mix, teacher, student = Mixture(2.0, 1.0, 0.3), Teacher("logistic", 0.1), Student(0.5, 2.0, 0.3, 1e-3)
    r, w = solve_recording(solve_student, mix, teacher, student, SolverConfig(max_steps=2, tol=1e-14, newton_steps=100))
    if not bool(r.converged):
        assert w
    else:
        ref = solve_student(mix, teacher, student)
        np.testing.assert_allclose([float(r.m), float(r.q), float(r.r)], [float(ref.m), float(ref.q), float(ref.r)],
                                   rtol=1e-8)


@pytest.mark.parametrize("argv", [
    ["--alpha", "2", "--delta", "1", "--lam-t", "0.1"],
    ["--alpha", "3.635", "--delta", "0.589", "--rho", "0.541", "--lam-t", "6.317"],  # hard for the solver
])
def test_cli_exit_status_follows_the_converged_flag(argv, capsys):
    rc = kdjax.cli.main(["solve", "--json"] + argv)
    out = capsys.readouterr()
    payload = json.loads(out.out)
    converged = payload["teacher"]["converged"]
    assert rc == (0 if converged else 1), (rc, payload)
    if not converged:
        assert "did not converge" in out.err
    vals = [v for k, v in payload["teacher"].items() if k != "converged"]
    assert all(math.isfinite(v) for v in vals) or not converged


# --------------------------------------------------------------------------- near-critical points

A1 = star(1.0, 0.5)
A2 = star(0.5, 0.3)
A3 = star(1.5, 0.7)
HARD_STUDENT = 0.5 * star(2.0, 0.5)  # gamma alpha*(delta / gamma, rho) at gamma = 0.5, delta = 1

NEAR = [
    # (id, kind, mixture, teacher, student, expect)
    ("logistic 0.97 a*", Mixture(0.97 * A1, 1.0), Teacher("logistic", 0.0), None, "refuse"),
    ("logistic 0.99 a* rho.3", Mixture(0.99 * A2, 0.5, 0.3), Teacher("logistic", 0.0), None, "refuse"),
    ("logistic 1.01 a*", Mixture(1.01 * A1, 1.0), Teacher("logistic", 0.0), None, "solve"),
    ("logistic 1.03 a* rho.3", Mixture(1.03 * A2, 0.5, 0.3), Teacher("logistic", 0.0), None, "solve"),
    ("hinge 0.99 a*", Mixture(0.99 * A1, 1.0), Teacher("hinge", 0.0), None, "refuse"),
    ("hinge 1.02 a* rho.7", Mixture(1.02 * A3, 1.5, 0.7), Teacher("hinge", 0.0), None, "solve"),
    ("square 0.99", Mixture(0.99, 1.0, 0.4), Teacher("square", 0.0), None, "refuse"),
    ("square 1.01", Mixture(1.01, 1.0, 0.4), Teacher("square", 0.0), None, "solve"),
    ("square 1.05 rho.2", Mixture(1.05, 0.5, 0.2), Teacher("square", 0.0), None, "solve"),
    ("logistic lam1e-6 a.2", Mixture(0.2, 1.0), Teacher("logistic", 1e-6), None, "solve"),
    ("hinge lam1e-6 a.3 rho.2", Mixture(0.3, 0.5, 0.2), Teacher("hinge", 1e-6), None, "solve"),
    ("square lam1e-6 a.2 rho.2", Mixture(0.2, 0.5, 0.2), Teacher("square", 1e-6), None, "solve"),
    ("student same a=1.02 gamma", Mixture(0.51, 1.0), Teacher("logistic", 0.1), Student(0.5, 2.0, 0.0, 1e-5), "solve"),
    ("student fresh a_s=1.025 gamma", Mixture(2.0, 1.0, 0.4), Teacher("logistic", 0.1),
     Student(0.8, 1.0, 0.3, 1e-5, "fresh", 0.82), "solve"),
    ("student lam0 a=0.99 gamma", Mixture(0.99 * 0.5, 1.0), Teacher("logistic", 0.1),
     Student(0.5, 2.0, 0.5, 0.0), "refuse"),
    ("hard student 0.97 threshold", Mixture(0.97 * HARD_STUDENT, 1.0), Teacher("logistic", 0.1),
     Student(0.5, 1.0, 1.0, 0.0), "refuse"),
    ("hard student 1.05 threshold", Mixture(1.05 * HARD_STUDENT, 1.0), Teacher("logistic", 0.1),
     Student(0.5, 1.0, 1.0, 0.0), "solve"),
]


@pytest.mark.parametrize("case", NEAR, ids=[c[0] for c in NEAR])
def test_near_critical_points_converge_or_fail_loudly(case):
    _, mix, teacher, student, expect = case
    fn, args, fields = (solve_teacher, (mix, teacher), T_FIELDS) if student is None else \
        (solve_student, (mix, teacher, student), S_FIELDS)
    if expect == "refuse":
        text = refused(fn, *args)
        assert ("separable" in text) or ("interpolat" in text) or ("alpha <= 1" in text), text
        return
    r, w = solve_recording(fn, *args)
    if loud_or_clean(r, w, fields) and student is not None:
        assert 0.0 <= float(r.agreement) <= 1.0
        assert float(r.r) ** 2 <= student.gamma * float(r.teacher.q) * float(r.q) * (1 + 1e-8)


def square_ridgeless(alpha, delta, rho):
    """Square-loss teacher at lam_t = 0, alpha > 1: the closed form of docs Sec. 2 at lam -> 0."""
    V = 1.0 / (alpha - 1.0)
    kappa = 4 * rho * (1 - rho)
    m = kappa / (delta + kappa)
    b = (2 * rho - 1) * (1 - m)
    V_hat = alpha * delta / (1 + V)
    m_hat = alpha * kappa * (1 - m) / (1 + V)
    C = (1 - m) ** 2 - 2 * b * (1 - m) * (2 * rho - 1) + b**2
    q = (m_hat**2 + alpha * delta * C / (1 + V) ** 2) / (V_hat**2 - alpha * delta**2 / (1 + V) ** 2)
    return m, q, b, V


@pytest.mark.parametrize("alpha,delta,rho", [(1.01, 1.0, 0.4), (1.03, 0.5, 0.2), (1.05, 2.0, 0.5)])
def test_ridgeless_square_teacher_near_alpha_one_matches_closed_form(alpha, delta, rho):
    r = solve_teacher(Mixture(alpha, delta, rho), Teacher("square", 0.0))
    assert bool(r.converged)
    np.testing.assert_allclose([float(r.m), float(r.q), float(r.b), float(r.V)], square_ridgeless(alpha, delta, rho),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_norm_diverges_approaching_separability_from_above(loss):
    qs = []
    for f in (1.01, 1.05, 1.25):
        r, w = solve_recording(solve_teacher, Mixture(f * A1, 1.0), Teacher(loss, 0.0))
        assert loud_or_clean(r, w, T_FIELDS), (loss, f)
        qs.append(float(r.q))
    assert qs[0] > qs[1] > qs[2], qs
    assert qs[0] > 10 * qs[2], qs  # diverges at alpha*


@pytest.mark.parametrize("loss", ["logistic", "hinge", "square"])
def test_tiny_ridge_at_small_alpha_is_finite_and_ordered(loss):
    mix = Mixture(0.3, 1.0, 0.3)
    res = [solve_recording(solve_teacher, mix, Teacher(loss, lam)) for lam in (1e-6, 1e-4, 1e-2)]
    assert all(loud_or_clean(r, w, T_FIELDS) for r, w in res)
    q = [float(r.q) for r, _ in res]
    loss_term = [float(r.train_loss) for r, _ in res]
    # Penalised family: |w|^2 non-increasing, data term non-decreasing in lam.
    assert q[0] >= q[1] * (1 - 1e-9) and q[1] >= q[2] * (1 - 1e-9), q  # (to the solver's tolerance)
    assert loss_term[0] <= loss_term[1] + 1e-10 <= loss_term[2] + 2e-10, loss_term
