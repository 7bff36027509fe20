"""Student theory: identities that must hold exactly, limits, errors, transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import Mixture, SolverConfig, Student, Teacher, agreement, solve_student, solve_teacher


@pytest.mark.parametrize("loss,lam_t,alpha,T", [
    ("logistic", 0.1, 3.0, 1.0), ("logistic", 0.0, 5.0, 0.7), ("logistic", 1.0, 1.5, 1.0), ("square", 0.05, 2.0, 2.5),
])
def test_self_distillation_without_hard_labels_returns_the_teacher(loss, lam_t, alpha, T):
    r = solve_student(Mixture(alpha, 1.0, 0.4), Teacher(loss, lam_t), Student(1.0, T, 0.0, 0.0))
    t = r.teacher
    np.testing.assert_allclose([r.m, r.q, r.r, r.b, r.gen_error], [t.m, t.q, t.q, t.b, t.gen_error],
                               rtol=1e-8, atol=1e-9)
    assert abs(float(r.agreement) - 1.0) < 1e-6
    assert bool(r.converged)


@pytest.mark.parametrize("data", ["same", "fresh"])
@pytest.mark.parametrize("gamma", [1.0, 0.6])
def test_hard_label_student_is_a_rescaled_teacher_and_ignores_the_temperature(data, gamma):
    mix, lam_s = Mixture(2.0, 0.8, 0.35), 0.05
    alpha_st = mix.alpha if data == "same" else 3.0
    kw = dict(gamma=gamma, hard_weight=1.0, lam=lam_s, data=data, alpha=None if data == "same" else alpha_st)
    a = solve_student(mix, Teacher("logistic", 0.1), Student(temperature=0.5, **kw))
    b = solve_student(mix, Teacher("square", 1.0), Student(temperature=4.0, **kw))
    ref = solve_teacher(Mixture(alpha_st / gamma, mix.delta / gamma, mix.rho), Teacher("logistic", lam_s / gamma**2))
    np.testing.assert_allclose([a.m, a.q, a.b, a.gen_error], [ref.m, ref.q / gamma, ref.b, ref.gen_error],
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose([a.m, a.q, a.b], [b.m, b.q, b.b], rtol=1e-7, atol=1e-9)


def test_large_temperature_limit_is_approached_like_one_over_T():
    mix, t = Mixture(2.0, 1.0), Teacher("logistic", 0.1)
    q = [float(solve_student(mix, t, Student(0.7, T, 0.0, 0.05)).q) for T in (25.0, 50.0, 100.0)]
    d1, d2 = q[0] - q[1], q[1] - q[2]
    assert abs(d1) < 1e-2 and abs(d2) < 0.6 * abs(d1)  # geometric (1/T) convergence


def test_small_temperature_shrinks_the_soft_label_student():
    mix, t = Mixture(2.0, 1.0), Teacher("logistic", 0.1)
    qs = [float(solve_student(mix, t, Student(0.7, T, 0.0, 0.1)).q) for T in (1.0, 0.3, 0.1)]
    assert qs[0] > qs[1] > qs[2]


def test_student_depends_on_the_teacher_only_through_soft_labels():
    # a < 1: a better-regularised teacher changes the student; the fresh and same students differ.
    mix = Mixture(2.0, 1.0)
    s1 = solve_student(mix, Teacher("logistic", 0.01), Student(0.5, 2.0, 0.0, 0.01))
    s2 = solve_student(mix, Teacher("logistic", 1.0), Student(0.5, 2.0, 0.0, 0.01))
    assert abs(float(s1.gen_error - s2.gen_error)) > 1e-4


def test_label_flip_symmetry():
    kw = dict(gamma=0.7, temperature=2.0, hard_weight=0.3, lam=0.02)
    a = solve_student(Mixture(2.0, 1.0, 0.3), Teacher("logistic", 0.1), Student(**kw))
    b = solve_student(Mixture(2.0, 1.0, 0.7), Teacher("logistic", 0.1), Student(**kw))
    np.testing.assert_allclose([a.m, a.q, a.r, a.gen_error, a.agreement], [b.m, b.q, b.r, b.gen_error, b.agreement],
                               rtol=1e-7)
    np.testing.assert_allclose(a.b, -b.b, atol=1e-9)


def test_student_results_are_converged_in_the_quadrature():
    args = (Mixture(3.0, 1.0, 0.4), Teacher("logistic", 0.05), Student(0.6, 1.5, 0.2, 0.01))
    base = solve_student(*args)
    fine = solve_student(*args, config=SolverConfig(degree=256, degree_2d=80, newton_steps=80, tol=1e-13))
    for f in ("m", "q", "r", "b", "gen_error", "agreement", "train_error", "train_loss"):
        assert abs(float(getattr(base, f)) - float(getattr(fine, f))) < 5e-8, f


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(temperature=0.0), "temperature"),
        (dict(hard_weight=1.2), "hard_weight"),
        (dict(lam=-1.0), "lam_s"),
        (dict(data="other"), "student data"),
        (dict(data="fresh"), "alpha_s"),
        (dict(data="fresh", alpha=-2.0), "alpha_s"),
    ],
)
def test_invalid_student_input_names_the_parameter(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Student(**kwargs)


def test_no_minimiser_regimes_of_the_student_are_refused():
    t = Teacher("logistic", 0.1)
    with pytest.raises(ValueError, match="separable"):
        # hard labels: alpha/gamma = 2 < alpha*(delta/gamma = 1) = 3.70
        solve_student(Mixture(1.0, 0.5), t, Student(0.5, 1.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="interpolates"):
        solve_student(Mixture(0.5, 1.0), Teacher("logistic", 0.1), Student(0.7, 1.0, 0.0, 0.0))


def test_student_composes_with_jit_vmap_grad():
    def solve(T, lam_t):
        return solve_student(Mixture(2.0, 1.0), Teacher("logistic", lam_t), Student(0.5, T, 0.0, 0.01))

    err = lambda T, lam_t: solve(T, lam_t).gen_error
    agree = lambda T, lam_t: solve(T, lam_t).agreement  # computed when read, also from a traced result

    # one user program: jit of vmap of value_and_grad (the three transformations at once)
    Ts = jnp.asarray([0.5, 2.0])
    (values, (g_T, g_lam)), (agreements, g_agree) = jax.jit(jax.vmap(
        lambda T, lam_t: (jax.value_and_grad(err, argnums=(0, 1))(T, lam_t), jax.value_and_grad(agree)(T, lam_t)),
        in_axes=(0, None)))(Ts, 0.1)
    np.testing.assert_allclose(values, [float(err(0.5, 0.1)), float(err(2.0, 0.1))], rtol=1e-9)
    h = 1e-5
    fd = ((err(2.0 + h, 0.1) - err(2.0 - h, 0.1)) / (2 * h), (err(2.0, 0.1 + h) - err(2.0, 0.1 - h)) / (2 * h))
    np.testing.assert_allclose((g_T[1], g_lam[1]), fd, rtol=1e-5)
    s = solve(2.0, 0.1)
    by_overlaps = agreement(s.teacher.m, s.teacher.q, s.teacher.b, s.m, s.q, s.r, s.b, 1.0, 0.5)
    np.testing.assert_allclose([agreements[1], s.agreement], [by_overlaps] * 2, rtol=1e-12)
    np.testing.assert_allclose(g_agree[1], (agree(2.0 + h, 0.1) - agree(2.0 - h, 0.1)) / (2 * h), rtol=1e-5)
