"""Property tests over the valid domain (hypothesis), input validation, and solver honesty.

Every expected value comes from theory, an identity or a closed form:

* Cauchy-Schwarz / Gram positivity of the overlaps (``|v|^2 / N = 1``, ``|v_S|^2 / N = gamma``, the
  teacher's coordinates are i.i.d. so ``w_t,S . v_S / N = gamma m_t`` and ``|w_t,S|^2 / N = gamma q_t``);
* the label flip ``y -> -y`` (``rho -> 1 - rho``, ``b -> -b``) leaves every other observable unchanged;
* ``m > 0`` (``y f >= 0`` for logistic and hinge; the square loss closed form) implies
  ``gen_error < max(rho, 1 - rho)``;
* the Bayes-optimal error bounds every estimator built from the same training set from below;
* for a penalised family ``L(w) + lam |w|^2 / 2`` the norm is non-increasing and the data term
  non-decreasing in ``lam`` (exact minimisers, any loss);
* ``P(sign h_s != sign h_t)`` lies between ``|eps_s - eps_t|`` and ``eps_s + eps_t`` (triangle
  inequality for any joint law);
* the proximal map solves its defining equation (1.1) and a converged teacher is a fixed point of the
  saddle-point equations (2.2)-(2.4) evaluated independently here (numpy, bisection prox, fine
  trapezoidal quadrature).

Solves go through the public eager API, whose module-level ``jit`` is compiled once per loss / data
mode and then evaluated at every drawn point (a ``vmap`` of the solver is slower on CPU: every lane
runs as long as the slowest one).  Bugs the tests reveal are ``xfail(strict=True)`` with the
reproduction in the reason.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import solve_recording
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kdjax
import kdjax.cli
from kdjax import Mixture, SolverConfig, Student, Teacher, solve_student, solve_teacher

pytestmark = pytest.mark.slow  # long-running: `pytest -m slow`

LOSSES = ("logistic", "square", "hinge")
TOL = SolverConfig().tol
PROPERTY = settings(
    max_examples=20, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# The valid domain of the brief.  Python floats keep the jitted solves on one compilation.
alphas = st.floats(0.2, 8.0)
deltas = st.floats(0.2, 3.0)
rhos = st.floats(0.1, 0.9)
lam_ts = st.floats(-3.0, 1.0).map(lambda e: float(10.0**e))
gammas = st.floats(0.3, 1.0)
temperatures = st.floats(0.3, 8.0)
hard_weights = st.floats(0.0, 1.0)
lam_ss = st.floats(-3.0, 0.0).map(lambda e: float(10.0**e))
alpha_ss = st.floats(0.5, 5.0)

TEACHER_FIELDS = ("gen_error", "m", "q", "b", "V", "train_error", "train_loss", "residual")
STUDENT_FIELDS = ("gen_error", "m", "q", "r", "b", "agreement", "train_error", "train_loss", "V", "V_st", "residual")


def floats_of(result, fields):
    return {f: float(getattr(result, f)) for f in fields}


def assert_loud_or_clean(result, messages, fields, what):
    """A converged point is clean (no error, finite, small residual); any other point raises."""
    values = floats_of(result, fields)
    if bool(result.converged):
        assert not messages, f"{what}: converged but warned {messages}"
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        assert not bad, f"{what}: converged with non-finite {bad}: {values}"
        scale = 1.0 + max(abs(v) for k, v in values.items() if k in ("m", "q", "r", "b", "V", "V_st"))
        assert values["residual"] <= TOL * scale, f"{what}: converged with residual {values['residual']:g}"
        return True
    assert any("did not converge" in m for m in messages), f"{what}: converged=False without a SolveError"
    return False


# --------------------------------------------------------------------------- independent reference


def _sigmoid(u):
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def reference_logistic_teacher_map(x, alpha, delta, rho, lam, nodes=6001, span=12.0):
    """Saddle-point map (2.2)-(2.4) of the logistic teacher, written independently of kdjax.

    Prox by 200 bisection steps in ``omega +- V`` (exact to round-off), ``dh/d omega`` from the
    implicit function theorem, Gaussian averages by the trapezoidal rule on ``[-12, 12]`` (the
    integrands are analytic: exponential convergence; 6001 nodes resolve ``sqrt(delta q)`` up to ~50).
    """
    m, q, V, b = (float(v) for v in x)
    xi = np.linspace(-span, span, nodes)
    weight = np.exp(-0.5 * xi**2) / math.sqrt(2.0 * math.pi) * (xi[1] - xi[0])
    avg = dict(yf=0.0, f2=0.0, D=0.0, f=0.0)
    for y, p in ((1.0, rho), (-1.0, 1.0 - rho)):
        omega = y * m + b + math.sqrt(delta * q) * xi
        lo, hi = omega - V, omega + V
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            below = mid - omega - V * y * _sigmoid(-y * mid) < 0.0
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        h = 0.5 * (lo + hi)
        s = _sigmoid(y * h)
        lpp = s * (1.0 - s)
        f = (h - omega) / V
        D = lpp / (1.0 + V * lpp)
        for key, g in (("yf", y * f), ("f2", f * f), ("D", D), ("f", f)):
            avg[key] += p * float(np.sum(weight * g))
    m_hat, q_hat, V_hat = alpha * avg["yf"], alpha * delta * avg["f2"], alpha * delta * avg["D"]
    k = lam + V_hat
    return np.array([m_hat / k, (m_hat**2 + q_hat) / k**2, delta / k, b + avg["f"] / avg["D"]])


def reference_gap(result, alpha, delta, rho, lam):
    x = np.array([float(result.m), float(result.q), float(result.V), float(result.b)])
    gap = reference_logistic_teacher_map(x, alpha, delta, rho, lam) - x
    return float(np.max(np.abs(gap) / (1.0 + np.abs(x))))


# --------------------------------------------------------------------------- teacher properties


def assert_label_flip(result, flipped, keep, rtol, atol):
    """y -> -y with rho -> 1 - rho leaves the fields ``keep`` unchanged and flips the bias."""
    np.testing.assert_allclose([float(getattr(flipped, k)) for k in keep], [float(getattr(result, k)) for k in keep],
                               rtol=rtol, atol=atol, err_msg="label flip")
    np.testing.assert_allclose(float(flipped.b), -float(result.b), rtol=rtol, atol=atol, err_msg="label flip: b -> -b")


def check_teacher_point(r, mixture, loss):
    """Every bound theory guarantees for a converged teacher."""
    v = floats_of(r, TEACHER_FIELDS)
    rho = mixture.rho
    for k in ("gen_error", "train_error"):
        assert 0.0 <= v[k] <= 1.0, (k, v)
    assert v["train_loss"] >= -1e-12, v
    assert v["q"] > 0 and v["V"] > 0, v
    assert v["m"] > 0, v  # y f >= 0 for logistic / hinge; closed form kappa / (...) for square
    assert v["m"] ** 2 <= v["q"] * (1 + 1e-9), v  # Cauchy-Schwarz with |v|^2 / N = 1
    assert v["gen_error"] < max(rho, 1 - rho) + 1e-12, v  # m > 0: better than the constant guess
    bayes = float(kdjax.bayes_optimal_error(mixture))
    assert v["gen_error"] >= bayes - 1e-10, (v["gen_error"], bayes)


@PROPERTY
@given(loss=st.sampled_from(LOSSES), alpha=alphas, delta=deltas, rho=rhos, lam=lam_ts, ratio=st.floats(1.5, 10.0))
def test_teacher_invariants_over_the_valid_domain(loss, alpha, delta, rho, lam, ratio):
    mix, flipped = Mixture(alpha, delta, rho), Mixture(alpha, delta, 1.0 - rho)
    t = Teacher(loss, lam)
    a, wa = solve_recording(solve_teacher, mix, t)
    b, wb = solve_recording(solve_teacher, flipped, t)
    c, wc = solve_recording(solve_teacher, mix, Teacher(loss, lam * ratio))
    ok = [assert_loud_or_clean(r, w, TEACHER_FIELDS, f"{loss} {m} lam={l:g}")
          for r, w, m, l in ((a, wa, mix, lam), (b, wb, flipped, lam), (c, wc, mix, lam * ratio))]
    if not ok[0]:
        print(f"unconverged teacher: {loss} {mix} lam_t={lam:g} residual={float(a.residual):.3g}")
        return
    check_teacher_point(a, mix, loss)
    if ok[1]:
        check_teacher_point(b, flipped, loss)
        assert_label_flip(a, b, ("m", "q", "V", "gen_error", "train_error", "train_loss"), rtol=1e-7, atol=1e-9)
    if ok[2]:
        # Larger ridge: norm non-increasing, data term non-decreasing (exact minimisers).
        assert float(c.q) <= float(a.q) * (1 + 1e-8), (float(a.q), float(c.q))
        assert float(c.train_loss) >= float(a.train_loss) - 1e-9, (float(a.train_loss), float(c.train_loss))
    if loss == "logistic":
        # A converged point is a fixed point of the exact equations .
        assert reference_gap(a, alpha, delta, rho, lam) < 1e-4


def _domain_sample(n, seed, lam_range=(1e-3, 10.0)):
    rng = np.random.default_rng(seed)
    lo, hi = np.log10(lam_range[0]), np.log10(lam_range[1])
    return [(float(rng.uniform(0.2, 8.0)), float(rng.uniform(0.2, 3.0)), float(rng.uniform(0.1, 0.9)),
             float(10.0 ** rng.uniform(lo, hi))) for _ in range(n)]


@pytest.mark.parametrize(
    "loss,lam_range",
    [
        ("logistic", (1e-3, 1.0)),
        ("logistic", (1.0, 10.0)),  # regression: newton_prox once left converged nodes (fixed in 9fcba52)
        ("square", (1e-3, 10.0)),
        ("hinge", (1e-3, 10.0)),
    ],
)
def test_unconverged_teachers_are_rare_and_loud(loss, lam_range):
    failures = []
    points = _domain_sample(40, 2024, lam_range)
    for alpha, delta, rho, lam in points:
        r, w = solve_recording(solve_teacher, Mixture(alpha, delta, rho), Teacher(loss, lam))
        if not assert_loud_or_clean(r, w, TEACHER_FIELDS, loss):
            failures.append((alpha, delta, rho, lam, float(r.residual)))
    for f in failures:
        print("unconverged %s teacher: alpha=%.4g delta=%.4g rho=%.4g lam_t=%.4g residual=%.3g" % ((loss,) + f))
    assert len(failures) <= 0.05 * len(points), f"{len(failures)} of {len(points)} unconverged: {failures}"


@pytest.mark.parametrize(
    "alpha,delta,rho,lam",
    [(3.635, 0.589, 0.541, 6.317), (8.0, 3.0, 0.9, 10.0), (2.609, 0.25, 0.161, 1.81)],
)
def test_logistic_teacher_converges_under_strong_ridge(alpha, delta, rho, lam):
    """Regression: before 9fcba52 newton_prox bisected away from converged nodes, the map was
    discontinuous and these points ended with residuals ~1e-4 (converged=False)."""
    r, w = solve_recording(solve_teacher, Mixture(alpha, delta, rho), Teacher("logistic", lam))
    assert bool(r.converged) and not w, (float(r.residual), w)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(omega=st.floats(-30.0, 30.0), V=st.floats(1e-3, 50.0), y=st.sampled_from([1.0, -1.0]),
       p=st.floats(0.0, 1.0), a=st.floats(0.0, 1.0), T=st.floats(0.3, 8.0))
@example(omega=-2.0, V=1.0, y=1.0, p=0.5, a=0.0, T=1.0)
def test_proximal_maps_solve_their_defining_equation(omega, V, y, p, a, T):
    """(1.1): ``h - omega + V l'(h) = 0`` to round-off, for a scalar call of each prox.

    Regression: before 9fcba52 a node whose residual was already at round-off took one more step,
    which bisected towards a far bracket end (``omega = -2, V = 1``: residual 5e-9).
    """
    g, gk = (float(v) for v in _prox_residuals(omega, V, y, p, a, T))
    assert abs(g) <= 1e-12 * (1 + abs(omega) + V), g
    assert abs(gk) <= 1e-12 * (1 + abs(omega) + V * (a + (1 - a) * T)), gk


@jax.jit
def _prox_residuals(omega, V, y, p, a, T):
    tau = jnp.log(p) - jnp.log1p(-p)  # p = sigmoid(tau)
    h = kdjax.Logistic().prox(omega, V, y)
    hk = kdjax.KD.prox(omega, V, y, tau, a, T)
    return h - omega + V * kdjax.Logistic().grad(h, y), hk - omega + V * kdjax.KD.grad(hk, y, tau, a, T)


def test_converged_logistic_teacher_is_an_exact_fixed_point_at_weak_ridge():
    alpha, delta, rho, lam = 3.411, 2.403, 0.185, 1.138e-3
    r, w = solve_recording(solve_teacher, Mixture(alpha, delta, rho), Teacher("logistic", lam))
    assert bool(r.converged) and not w
    assert reference_gap(r, alpha, delta, rho, lam) < 1e-8


def test_reference_map_agrees_with_kdjax_where_both_are_accurate():
    """Guards the reference itself: at an ordinary point both agree to ~1e-12."""
    alpha, delta, rho, lam = 2.0, 1.0, 0.35, 0.1
    r = solve_teacher(Mixture(alpha, delta, rho), Teacher("logistic", lam))
    assert bool(r.converged)
    assert reference_gap(r, alpha, delta, rho, lam) < 1e-10


def test_square_teacher_converges_for_imbalanced_classes_at_weak_ridge():
    alpha, delta, rho, lam = 0.5, 0.2, 0.1, 1e-3
    r, _ = solve_recording(solve_teacher, Mixture(alpha, delta, rho), Teacher("square", lam))
    c = lam + alpha * delta - delta
    V = (-c + math.sqrt(c * c + 4 * lam * delta)) / (2 * lam)
    kappa = 4 * rho * (1 - rho)
    m = alpha * kappa / (lam * (1 + V) + alpha * delta + alpha * kappa)
    assert bool(r.converged)
    np.testing.assert_allclose([float(r.V), float(r.m), float(r.b)], [V, m, (2 * rho - 1) * (1 - m)], rtol=1e-8)


# --------------------------------------------------------------------------- student properties


def check_student_point(s, mixture, student):
    v = floats_of(s, STUDENT_FIELDS)
    t = s.teacher
    g = student.gamma
    for k in ("gen_error", "agreement", "train_error"):
        assert -1e-12 <= v[k] <= 1.0 + 1e-12, (k, v)
    # Per sample the KD loss is >= (1 - a) T^2 H(p) >= 0.
    assert v["train_loss"] >= -1e-12, v
    assert v["q"] > 0 and v["V"] > 0, v
    # Gram matrix of (v_S, w_t,S, w_s) / N is positive semi-definite.
    mt, qt = float(t.m), float(t.q)
    gram = np.array([[g, g * mt, v["m"]], [g * mt, g * qt, v["r"]], [v["m"], v["r"], v["q"]]])
    d = np.sqrt(np.diag(gram))
    assert np.linalg.eigvalsh(gram / np.outer(d, d))[0] >= -1e-8, gram
    assert v["m"] ** 2 <= g * v["q"] * (1 + 1e-8), v
    assert v["r"] ** 2 <= g * qt * v["q"] * (1 + 1e-8), v
    # Disagreement vs errors: |eps_s - eps_t| <= P(disagree) <= eps_s + eps_t.
    dis, es, et = 1.0 - v["agreement"], v["gen_error"], float(t.gen_error)
    assert abs(es - et) - 1e-9 <= dis <= es + et + 1e-9, (dis, es, et)
    if student.data == "same":
        # A function of the teacher's training set only (fresh inputs carry extra information on v).
        assert es >= float(kdjax.bayes_optimal_error(mixture)) - 1e-10


def make_student(gamma, T, a, lam_s, data, alpha_s):
    return Student(gamma, T, a, lam_s, data, alpha_s if data == "fresh" else None)


@settings(max_examples=14, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(alpha=alphas, delta=deltas, rho=rhos, lam_t=lam_ts, gamma=gammas, T=temperatures, a=hard_weights,
       lam_s=lam_ss, data=st.sampled_from(["same", "fresh"]), alpha_s=alpha_ss, ratio=st.floats(1.5, 10.0))
def test_student_invariants_over_the_valid_domain(alpha, delta, rho, lam_t, gamma, T, a, lam_s, data, alpha_s, ratio):
    teacher = Teacher("logistic", lam_t)
    student = make_student(gamma, T, a, lam_s, data, alpha_s)
    mix, flipped = Mixture(alpha, delta, rho), Mixture(alpha, delta, 1.0 - rho)
    s, ws = solve_recording(solve_student, mix, teacher, student)
    f, wf = solve_recording(solve_student, flipped, teacher, student)
    u, wu = solve_recording(solve_student, mix, teacher, student.replace(lam=lam_s * ratio))
    ok = [assert_loud_or_clean(r, w, STUDENT_FIELDS, f"student {data}") for r, w in ((s, ws), (f, wf), (u, wu))]
    if not ok[0]:
        print(f"unconverged student: {mix} lam_t={lam_t:g} {student} residual={float(s.residual):.3g}")
        return
    check_student_point(s, mix, student)
    if ok[1]:
        check_student_point(f, flipped, student)
        assert_label_flip(s, f, ("m", "q", "r", "gen_error", "agreement", "train_error", "train_loss"),
                          rtol=1e-6, atol=1e-8)
    if ok[2]:
        assert float(u.q) <= float(s.q) * (1 + 1e-7), (float(s.q), float(u.q))
        assert float(u.train_loss) >= float(s.train_loss) - 1e-8, (float(s.train_loss), float(u.train_loss))


@pytest.mark.parametrize("data", ["same", "fresh"])
def test_unconverged_students_are_rare_and_loud(data):
    rng = np.random.default_rng(7 if data == "same" else 8)
    failures, n = [], 10
    for _ in range(n):
        mix = Mixture(float(rng.uniform(0.2, 8)), float(rng.uniform(0.2, 3)), float(rng.uniform(0.1, 0.9)))
        teacher = Teacher("logistic", float(10 ** rng.uniform(-3, 1)))
        student = make_student(float(rng.uniform(0.3, 1)), float(rng.uniform(0.3, 8)), float(rng.uniform(0, 1)),
                               float(10 ** rng.uniform(-3, 0)), data, float(rng.uniform(0.5, 5)))
        s, w = solve_recording(solve_student, mix, teacher, student)
        if not assert_loud_or_clean(s, w, STUDENT_FIELDS, f"student {data}"):
            failures.append((mix, teacher, student, float(s.residual)))
    for f in failures:
        print("unconverged student:", *f)
    assert len(failures) <= 0.1 * n, failures


# --------------------------------------------------------------------------- Bayes and separability


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(a1=alphas, a2=alphas, d1=deltas, d2=deltas, rho=rhos)
def test_bayes_error_decreases_with_alpha_and_increases_with_delta(a1, a2, d1, d2, rho):
    err = lambda a, d: float(kdjax.bayes_optimal_error(Mixture(a, d, rho)))
    (alo, ahi), (dlo, dhi) = sorted((a1, a2)), sorted((d1, d2))
    assert err(alo, d1) >= err(ahi, d1) - 1e-15
    assert err(a1, dlo) <= err(a1, dhi) + 1e-15
    assert 0.0 < err(a1, d1) <= min(rho, 1 - rho) + 1e-15  # never worse than the constant guess
    # Label flip.
    assert abs(err(a1, d1) - float(kdjax.bayes_optimal_error(Mixture(a1, d1, 1 - rho)))) < 1e-14


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(d1=deltas, d2=deltas, rho=rhos)
def test_separability_threshold_bounds_symmetry_and_monotonicity(d1, d2, rho):
    star = lambda d, r: float(kdjax.separability_threshold(d, r))
    # m -> 0, b = 0 in (2.5) gives E G = 1/2: alpha* >= 2 (Cover) for every delta and rho.
    assert star(d1, rho) >= 2.0 - 1e-9
    assert abs(star(d1, rho) - star(d1, 1 - rho)) <= 1e-9 * star(d1, rho)
    # rho = 1/2: b = 0 and G((m)/sqrt(delta)) grows with delta, so alpha* decreases with delta.
    lo, hi = sorted((d1, d2))
    assert star(lo, 0.5) >= star(hi, 0.5) * (1 - 1e-10)


# --------------------------------------------------------------------------- input validation

NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
POSITIVE_INVALID = st.one_of(st.floats(max_value=0.0, allow_nan=False), NONFINITE)
NONNEG_INVALID = st.one_of(st.floats(max_value=-1e-300, allow_nan=False), NONFINITE)
UNIT_OPEN_INVALID = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=1.0),
                              st.sampled_from([math.nan, -math.inf]))
UNIT_CLOSED_INVALID = st.one_of(st.floats(max_value=-1e-300, allow_nan=False), st.floats(min_value=1.0 + 1e-12),
                                st.sampled_from([math.nan, -math.inf]))
GAMMA_INVALID = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=1.0 + 1e-12),
                          st.sampled_from([math.nan, -math.inf]))

CONSTRUCTORS = {
    "alpha": (lambda v: Mixture(v, 1.0), POSITIVE_INVALID),
    "delta": (lambda v: Mixture(1.0, v), POSITIVE_INVALID),
    "rho": (lambda v: Mixture(1.0, 1.0, v), UNIT_OPEN_INVALID),
    "lam_t": (lambda v: Teacher("logistic", v), NONNEG_INVALID),
    "gamma": (lambda v: Student(gamma=v), GAMMA_INVALID),
    "temperature": (lambda v: Student(temperature=v), POSITIVE_INVALID),
    "hard_weight": (lambda v: Student(hard_weight=v), UNIT_CLOSED_INVALID),
    "lam_s": (lambda v: Student(lam=v), NONNEG_INVALID),
    "alpha_s": (lambda v: Student(data="fresh", alpha=v), POSITIVE_INVALID),
    "tol": (lambda v: SolverConfig(tol=v), UNIT_OPEN_INVALID),
    "damping": (lambda v: SolverConfig(damping=v), GAMMA_INVALID),
}


def assert_one_line_value_error(make, name):
    with pytest.raises(ValueError) as err:
        make()
    text = str(err.value)
    assert name in text and "\n" not in text, text


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_constructors_reject_invalid_numbers_by_name(name):
    make, invalid = CONSTRUCTORS[name]

    @settings(max_examples=15, deadline=None, derandomize=True, database=None)
    @given(value=invalid)
    def check(value):
        assert_one_line_value_error(lambda: make(value), name)

    check()


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: Teacher("Logistic", 0.1), "teacher loss"),
        (lambda: Teacher("exp", 0.1), "teacher loss"),
        (lambda: Teacher(None, 0.1), "teacher loss"),
        (lambda: Student(data="both"), "student data"),
        (lambda: Student(data="fresh"), "alpha_s"),  # fresh data needs alpha_s
        (lambda: Student(alpha=2.0), "alpha_s"),  # alpha_s only with fresh data
        (lambda: SolverConfig(degree=1), "degree"),
        (lambda: SolverConfig(degree_2d=0), "degree_2d"),
        (lambda: SolverConfig(newton_steps=2.5), "newton_steps"),
        (lambda: SolverConfig(max_steps=-3), "max_steps"),
        (lambda: Mixture(np.array([2.0, -1.0]), 1.0), "alpha"),  # arrays are checked entrywise
    ],
)
def test_constructors_reject_invalid_choices_by_name(make, name):
    assert_one_line_value_error(make, name)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: Mixture("abc", 1.0), "alpha"),
        (lambda: Mixture(None, 1.0), "alpha"),
        (lambda: Mixture(1.0, 1j), "delta"),
        (lambda: Teacher("logistic", "x"), "lam_t"),
        (lambda: Student(temperature=None), "temperature"),
        (lambda: Student(data="fresh", alpha="many"), "alpha_s"),
        (lambda: SolverConfig(tol="x"), "tol"),
    ],
)
def test_constructors_reject_non_numeric_values(make, name):
    assert_one_line_value_error(make, name)


# --------------------------------------------------------------------------- CLI validation

BASE = ["solve", "--alpha", "4", "--delta", "1", "--lam-t", "0.1"]
CLI_CASES = [
    (["--alpha", "0"], "alpha"), (["--alpha", "-1"], "alpha"), (["--alpha", "nan"], "alpha"),
    (["--alpha", "inf"], "alpha"), (["--delta", "0"], "delta"), (["--delta=-inf"], "delta"),
    (["--delta", "-inf"], "delta"), (["--lam-t", "-1e-3"], "lam_t"),  # negative numbers are values, not options
    (["--rho", "1"], "rho"), (["--rho", "0"], "rho"), (["--rho", "nan"], "rho"),
    (["--lam-t", "-0.1"], "lam_t"), (["--lam-t", "inf"], "lam_t"), (["--teacher-loss", "exp"], "teacher loss"),
    (["--gamma", "0"], "gamma"), (["--gamma", "1.5"], "gamma"), (["--temperature", "0"], "temperature"),
    (["--temperature", "nan"], "temperature"), (["--hard-weight", "-0.1"], "hard_weight"),
    (["--hard-weight", "2"], "hard_weight"), (["--lam-s", "-1"], "lam_s"), (["--lam-s", "inf"], "lam_s"),
    (["--student-data", "both"], "student data"), (["--student-data", "fresh"], "alpha_s"),
    (["--student-data", "fresh", "--alpha-s", "0"], "alpha_s"), (["--alpha-s", "2"], "alpha_s"),
]


@pytest.mark.parametrize("extra,name", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_rejects_invalid_flags_with_status_2_and_one_line(extra, name, capsys):
    argv = BASE + extra
    # later flags override BASE: argparse keeps the last occurrence
    rc = kdjax.cli.main(argv)
    out = capsys.readouterr()
    assert rc == 2, (argv, rc, out)
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], out.err
    assert out.out == ""


@pytest.mark.parametrize("argv,flag", [(["--alpha", "abc"], "--alpha"), (["--lam-t", "x"], "--lam-t"),
                                       (["--temperature", "hot"], "--temperature")])
def test_cli_unparsable_value_is_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        kdjax.cli.main(["solve"] + argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err
    assert len(err.strip().splitlines()) == 1, err


def test_cli_subprocess_rejects_negative_alpha():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "kdjax.cli", "solve", "--alpha", "-2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert out.stderr.strip().count("\n") == 0 and "alpha" in out.stderr and out.stdout == ""
