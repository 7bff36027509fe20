"""Finite-N simulation of the MODEL.md objectives against sklearn, closed forms and identities.

Compilation dominates the runtime, so the tests share a few compiled programs: every simulation
below uses N = 100, n = 300 (alpha = 3), 3 seeds and n_test = 20000 unless it needs otherwise;
rho, delta, lam, T, a are pytree leaves and do not recompile.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from kdjax import Mixture, Student, Teacher, agreement
from kdjax._simulate import _draw, _fit_student, _fit_teacher, _generation_data, _seed_keys
from kdjax.simulate import (
    ChainSimulation,
    GenerationSimulation,
    StudentSimulation,
    TeacherSimulation,
    simulate_chain,
    simulate_student,
    simulate_teacher,
)

N, ALPHA, SEEDS, N_TEST = 100, 3.0, 3, 20000
TOL = 1e-12  # the float64 default: max|grad| <= TOL * n

fit_teacher = jax.jit(functools.partial(_fit_teacher, tol=TOL, max_steps=200))
fit_student = jax.jit(functools.partial(_fit_student, tol=TOL, max_steps=200), static_argnums=4)


def _problem(mixture, seed):
    """The training set simulate_* draws for this seed: (v, x, y) as numpy."""
    ctx = _draw(_seed_keys([seed])[0], mixture, N, int(round(mixture.alpha * N)), jnp.float64)
    return np.asarray(ctx["v"]), np.asarray(ctx["x"]), np.asarray(ctx["y"])


def _fit(x, y, teacher):
    theta, gnorm, converged, finite, _ = fit_teacher(jnp.asarray(x), jnp.asarray(y), teacher)
    assert bool(converged) and bool(finite)
    theta = np.asarray(theta)
    return theta[:-1], theta[-1], float(gnorm)


def _teachers(mixture, teacher):
    return simulate_teacher(mixture, teacher, n_features=N, seeds=SEEDS, n_test=N_TEST)


def _students(mixture, teacher, student):
    return simulate_student(mixture, teacher, student, n_features=N, seeds=SEEDS, n_test=N_TEST)


MIXTURE = Mixture(alpha=ALPHA, delta=1.0, rho=0.3)
TEACHER = Teacher("logistic", 0.5)


@pytest.fixture(scope="module")
def hard_students():
    """Hard-label students (a = 1) at two temperatures: the same compiled program."""
    students = [Student(temperature=T, hard_weight=1.0, lam=0.2) for T in (1.0, 4.0)]
    return [_students(MIXTURE, TEACHER, student) for student in students]


def test_logistic_teacher_matches_sklearn_and_simulation_uses_that_minimiser():
    v, x, y = _problem(MIXTURE, seed=1)
    w, b, gnorm = _fit(x, y, TEACHER)
    ref = LogisticRegression(C=1 / TEACHER.lam, solver="newton-cholesky", tol=1e-14, max_iter=1000)
    ref.fit(x / np.sqrt(N), y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-6)
    assert abs(b - ref.intercept_[0]) < 1e-6
    assert gnorm <= TOL * len(y)
    sim = _teachers(MIXTURE, TEACHER)
    np.testing.assert_allclose(
        [sim.m[1], sim.q[1], sim.b[1]], [w @ v / N, w @ w / N, b], rtol=1e-10, atol=1e-12
    )
    assert np.all(sim.converged) and np.all(sim.grad_norm <= TOL * len(y))


def test_hinge_teacher_matches_svc():
    teacher = Teacher("hinge", 0.2)
    _, x, y = _problem(MIXTURE, seed=2)
    w, b, _ = _fit(x, y, teacher)
    ref = SVC(kernel="linear", C=1 / teacher.lam, tol=1e-10, max_iter=-1).fit(x / np.sqrt(N), y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-4)
    assert abs(b - ref.intercept_[0]) < 1e-4

    def objective(w, b):
        return np.maximum(0, 1 - y * (x @ w / np.sqrt(N) + b)).sum() + teacher.lam / 2 * w @ w

    assert objective(w, b) <= objective(ref.coef_[0], ref.intercept_[0]) + 1e-9


def test_square_teacher_matches_ridge_closed_form_with_free_bias():
    teacher = Teacher("square", 0.3)
    _, x, y = _problem(MIXTURE, seed=0)
    w, b, gnorm = _fit(x, y, teacher)
    a = np.hstack([x / np.sqrt(N), np.ones((len(y), 1))])
    hess = a.T @ a + np.diag([teacher.lam] * N + [0.0])
    np.testing.assert_allclose(np.append(w, b), np.linalg.solve(hess, a.T @ y), atol=1e-10)
    assert gnorm <= TOL * len(y)


def test_student_minimises_the_model_objective_and_matches_weighted_logistic_regression():
    """At T = 1 the KD objective is a logistic regression on 2n samples weighted by the targets."""
    student, N_s = Student(gamma=0.7, temperature=1.0, hard_weight=0.3, lam=0.4), 70
    _, x, y = _problem(MIXTURE, seed=0)
    w_t, b_t, _ = _fit(x, y, TEACHER)
    h_t = x @ w_t / np.sqrt(N) + b_t

    def objective(theta, temperature, a, lam):  # MODEL.md, written independently of the library
        h = jnp.asarray(x[:, :N_s]) @ theta[:-1] / np.sqrt(N) + theta[-1]
        p = jax.nn.sigmoid(h_t / temperature)
        ce = p * jax.nn.softplus(-h / temperature) + (1 - p) * jax.nn.softplus(h / temperature)
        hard = jax.nn.softplus(-y * h)
        return jnp.sum(a * hard + (1 - a) * temperature**2 * ce) + lam / 2 * theta[:-1] @ theta[:-1]

    for T in (1.0, 3.0):
        theta, gnorm, converged, finite, _ = fit_student(
            jnp.asarray(x), jnp.asarray(y), jnp.asarray(h_t), student.replace(temperature=T), N_s
        )
        assert bool(converged) and bool(finite) and float(gnorm) <= TOL * len(y)
        grad = jax.grad(objective)(theta, T, 0.3, 0.4)
        assert float(jnp.max(jnp.abs(grad))) <= 1e-10 * len(y)
        if T == 1.0:
            theta_1 = np.asarray(theta)

    p = 1 / (1 + np.exp(-h_t))
    xs = x[:, :N_s] / np.sqrt(N)
    ref = LogisticRegression(C=1 / 0.4, solver="newton-cholesky", tol=1e-14, max_iter=1000).fit(
        np.vstack([xs, xs]), np.r_[np.ones_like(y), -np.ones_like(y)],
        sample_weight=np.r_[0.3 * (y > 0) + 0.7 * p, 0.3 * (y < 0) + 0.7 * (1 - p)],
    )
    np.testing.assert_allclose(theta_1[:-1], ref.coef_[0], atol=1e-6)
    assert abs(theta_1[-1] - ref.intercept_[0]) < 1e-6


def test_self_distillation_student_equals_teacher():
    sim = _students(MIXTURE, Teacher("logistic", 0.1),
                    Student(gamma=1.0, temperature=2.0, hard_weight=0.0, lam=0.0, data="same"))
    t = sim.teacher
    assert np.all(sim.converged) and np.all(t.converged)
    for student_value, teacher_value in [(sim.m, t.m), (sim.q, t.q), (sim.b, t.b), (sim.r, t.q)]:
        np.testing.assert_allclose(student_value, teacher_value, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(sim.agreement, 1.0)
    np.testing.assert_allclose(sim.test_error, t.test_error)
    assert np.all(sim.grad_norm <= TOL * 300)


def test_hard_label_student_does_not_depend_on_temperature(hard_students):
    cold, hot = hard_students
    assert np.all(cold.converged) and np.all(hot.converged)
    assert np.all(cold.grad_norm <= TOL * 300)
    for field in ("m", "q", "r", "b", "train_loss", "agreement"):
        np.testing.assert_allclose(
            getattr(cold, field), getattr(hot, field), rtol=1e-12, atol=1e-14
        )


def test_student_teacher_is_simulate_teacher_and_seed_sequence_equals_count(hard_students):
    by_count = hard_students[0].teacher
    by_list = simulate_teacher(MIXTURE, TEACHER, n_features=N, seeds=[0, 1, 2], n_test=N_TEST)
    for field in ("m", "q", "b", "test_error", "train_error", "train_loss", "grad_norm"):
        np.testing.assert_array_equal(getattr(by_list, field), getattr(by_count, field))
    assert isinstance(hard_students[0], StudentSimulation)
    assert isinstance(by_list, TeacherSimulation)
    assert hard_students[0].q.shape == (SEEDS,) and by_list.m.shape == (SEEDS,)


def test_empirical_test_error_matches_gen_error_formula(hard_students):
    sim = hard_students[0]
    for res in (sim, sim.teacher):
        sem = np.sqrt(res.gen_error * (1 - res.gen_error) / N_TEST)
        assert np.all(np.abs(res.test_error - res.gen_error) <= 4.5 * sem)
    assert 0.5 < float(np.mean(sim.agreement)) < 1.0


def test_mean_and_sem_aggregate_over_seeds(hard_students):
    sim = hard_students[0]
    mean, sem = sim.mean(), sim.sem()
    assert isinstance(mean, StudentSimulation) and isinstance(mean.teacher, TeacherSimulation)
    np.testing.assert_allclose(mean.q, np.mean(sim.q))
    np.testing.assert_allclose(sem.teacher.m, np.std(sim.teacher.m, ddof=1) / np.sqrt(SEEDS))
    assert mean.converged == 1.0
    assert sim.check() is sim


def test_separable_data_without_ridge_is_flagged_not_returned():
    separable = MIXTURE.replace(delta=0.05)  # clusters far apart: linearly separable
    sim = _teachers(separable, Teacher("logistic", 0.0))
    assert not np.any(sim.converged) and not np.any(sim.finite_minimiser)
    np.testing.assert_array_equal(sim.train_error, 0.0)  # the flag is backed by a separator
    with pytest.raises(ValueError, match="no finite minimiser.*lam_t = 0"):
        sim.mean()
    assert np.isfinite(sim.mean(failed="keep").q)
    _, x, y = _problem(separable, seed=0)
    _, _, converged, finite, _ = fit_teacher(jnp.asarray(x), jnp.asarray(y), Teacher("hinge", 0.0))
    assert not bool(converged) and not bool(finite)
    # hard-label student without ridge on separable inputs (its teacher has a ridge)
    student = _students(separable, Teacher("logistic", 0.1), Student(hard_weight=1.0, lam=0.0))
    assert np.all(student.teacher.converged)
    assert not np.any(student.converged) and not np.any(student.finite_minimiser)
    with pytest.raises(ValueError, match="student: no finite minimiser"):
        student.check()


def test_non_separable_data_without_ridge_converges():
    sim = _teachers(MIXTURE.replace(delta=4.0), Teacher("logistic", 0.0))
    assert np.all(sim.converged) and np.all(sim.finite_minimiser) and np.all(sim.train_error > 0)


def test_fresh_student_data_runs_and_converges():
    sim = simulate_student(
        Mixture(alpha=1.5, delta=1.0), Teacher("square", 0.5),
        Student(gamma=0.5, temperature=2.0, hard_weight=0.5, lam=0.05, data="fresh", alpha=4.0),
        n_features=N, seeds=2, n_test=N_TEST,
    )
    assert np.all(sim.converged) and np.all(sim.grad_norm <= TOL * 400)
    sem = np.sqrt(sim.gen_error * (1 - sim.gen_error) / N_TEST)
    assert np.all(np.abs(sim.test_error - sim.gen_error) <= 4.5 * sem)


def test_float32_smoke():
    with jax.enable_x64(False):
        sim = simulate_student(Mixture(alpha=2.0, delta=1.0), Teacher("logistic", 0.1),
                               Student(gamma=0.5, hard_weight=0.2, lam=0.1), n_features=50,
                               seeds=2, n_test=1000)
        assert sim.q.dtype == jnp.float32
        assert np.all(sim.converged) and np.all(np.isfinite(sim.gen_error))


# --------------------------------------------------------------------------- distillation chains
# Each chain structure (depth, data modes, coordinate counts) is one compilation (~4 s per
# generation on 2 cores); the depth-1 comparisons reuse simulate_student programs compiled above.

CHAIN_FIELDS = ("m", "q", "r", "b", "gen_error", "test_error", "train_error", "train_loss",
                "agreement", "grad_norm", "converged", "finite_minimiser", "n_steps")


@pytest.mark.parametrize("data", ["same", "fresh"])
def test_one_generation_chain_is_simulate_student(data):
    # the shapes and static fields of programs compiled above (T, a, lam are leaves; a noisy
    # mixture is another program: the noisy chains below run the same code)
    if data == "same":  # as `hard_students`
        mixture, teacher, seeds = MIXTURE, TEACHER, SEEDS
        student = Student(temperature=2.0, hard_weight=0.3, lam=0.1)
    else:  # as test_fresh_student_data_runs_and_converges
        mixture, teacher, seeds = Mixture(alpha=1.5, delta=1.0), Teacher("square", 0.5), 2
        student = Student(gamma=0.5, temperature=2.0, hard_weight=0.5, lam=0.05, data="fresh",
                          alpha=4.0)
    sim = simulate_student(mixture, teacher, student, n_features=N, seeds=seeds, n_test=N_TEST)
    chain = simulate_chain(mixture, teacher, [student], n_features=N, seeds=seeds, n_test=N_TEST)
    assert isinstance(chain, ChainSimulation) and chain.depth == 1
    (gen,) = chain.generations
    assert isinstance(gen, GenerationSimulation) and gen.generation == 1
    assert np.all(gen.converged) and np.all(gen.upstream_converged)
    for field in CHAIN_FIELDS:
        np.testing.assert_allclose(np.asarray(getattr(gen, field), float),
                                   np.asarray(getattr(sim, field), float), rtol=0, atol=1e-10)
    for field in ("m", "q", "b", "gen_error", "test_error", "train_error", "train_loss"):
        np.testing.assert_allclose(getattr(chain.teacher, field), getattr(sim.teacher, field),
                                   rtol=0, atol=1e-10)
    np.testing.assert_array_equal(gen.r_teacher, gen.r)  # the predecessor is the teacher


CHAIN_N = 200
NOISY = Mixture(alpha=3.0, delta=1.0, label_noise=0.2)


def test_copying_generation_reproduces_its_predecessor_at_depth_two_and_three():
    """MODEL.md identity: gamma_k = gamma_{k-1}, T = 1, a = 0, lam = 0 on same inputs copies
    generation k - 1 (unique minimiser: alpha N > gamma N + 1), with label noise."""
    copy = Student(gamma=0.6, temperature=1.0, hard_weight=0.0, lam=0.0)
    first = Student(gamma=0.6, temperature=2.0, hard_weight=0.3, lam=0.1)
    chain = simulate_chain(NOISY, Teacher("logistic", 0.1), [first, copy, copy],
                           n_features=CHAIN_N, seeds=2, n_test=N_TEST)
    assert chain.check() is chain and chain.depth == 3
    g1, g2, g3 = chain.generations
    for prev, gen in ((g1, g2), (g2, g3)):
        assert np.all(gen.grad_norm <= TOL * 3 * CHAIN_N)
        # |w_k - w_{k-1}|^2 / N = q_k + q_{k-1} - 2 r_k (r_k: overlap with the predecessor)
        np.testing.assert_allclose(gen.q + prev.q - 2 * gen.r, 0.0, atol=1e-10)
        for field in ("m", "q", "b", "r_teacher", "gen_error", "test_error", "train_error"):
            np.testing.assert_allclose(getattr(gen, field), getattr(prev, field),
                                       rtol=1e-8, atol=1e-10)
        np.testing.assert_array_equal(gen.agreement, 1.0)
    # same inputs share the teacher's label flips: the copies' training errors are g1's exactly,
    # g1 is not the teacher (r with the teacher, agreement < 1)
    np.testing.assert_array_equal(g2.train_error, g1.train_error)
    np.testing.assert_array_equal(g1.r, g1.r_teacher)
    assert np.all(g1.agreement < 1.0)
    # aggregates over seeds, generation by generation
    mean, sem = chain.mean(), chain.sem()
    assert isinstance(mean, ChainSimulation) and isinstance(mean.generations[2], GenerationSimulation)
    np.testing.assert_allclose(mean.generations[1].q, np.mean(g2.q))
    np.testing.assert_allclose(sem.teacher.m, np.std(chain.teacher.m, ddof=1) / np.sqrt(2))
    assert mean.converged == 1.0 and chain.failure_message() == "all seeds converged"


def test_same_generations_share_the_training_set_and_fresh_ones_draw_new_inputs():
    mixture = NOISY
    ctx = _draw(_seed_keys([0])[0], mixture, 50, 150, jnp.float64)
    same, fresh = Student(), Student(data="fresh", alpha=2.0)
    x1, y1 = _generation_data(ctx, 1, same, 150)
    assert x1 is ctx["x"] and y1 is ctx["y"]  # the teacher's inputs and its noisy labels
    x2, y2 = _generation_data(ctx, 2, fresh, 100)
    x3, y3 = _generation_data(ctx, 3, fresh, 100)
    assert x2.shape == (100, 50) and y2.shape == (100,)
    assert not np.allclose(x2, ctx["x"][:100]) and not np.allclose(x2, x3)
    assert not np.array_equal(y2, y3)
    # fresh inputs come from the same mixture (same v): x.v / sqrt(N) has mean y_true |v|^2 / N
    v = ctx["v"]
    proj = np.asarray(x2 @ v / np.sqrt(50)) / float(v @ v / 50)
    assert 0.5 < np.mean(np.sign(proj) == y2) < 0.95  # labels flipped at rate eta = 0.2


def test_self_distillation_chain_with_fresh_generation_has_sane_errors():
    students = [Student(gamma=1.0, temperature=2.0, hard_weight=0.0, lam=0.01),
                Student(gamma=1.0, temperature=2.0, hard_weight=0.0, lam=0.01, data="fresh",
                        alpha=3.0)]
    chain = simulate_chain(NOISY.replace(alpha=2.0), Teacher("logistic", 0.1), students,
                           n_features=CHAIN_N, seeds=3, n_test=N_TEST).check()
    mean = chain.mean()
    for res in (chain.teacher,) + chain.generations:
        assert np.all(np.isfinite(res.gen_error)) and np.all(np.isfinite(res.test_error))
        sem = np.sqrt(res.gen_error * (1 - res.gen_error) / N_TEST)
        assert np.all(np.abs(res.test_error - res.gen_error) <= 4.5 * sem)
    for res in (mean.teacher,) + mean.generations:
        assert 0.0 <= res.gen_error <= 0.5 and 0.0 <= res.test_error <= 0.5
    g1, g2 = chain.generations
    assert np.all(g2.r != g2.r_teacher)  # r is taken against generation 1
    # the test inputs' joint law: empirical agreement = the exact bivariate formula
    for prev, gen in ((chain.teacher, g1), (g1, g2)):
        exact = np.asarray(agreement(prev.m, prev.q, prev.b, gen.m, gen.q, gen.r, gen.b, 1.0, 0.5))
        sem = np.sqrt(exact * (1 - exact) / N_TEST)
        assert np.all(np.abs(gen.agreement - exact) <= 4.5 * sem)
    assert 0.5 < float(mean.generations[1].agreement) < 1.0
    assert np.all(g2.train_error != g1.train_error) or np.all(g2.train_loss != g1.train_loss)


def test_chain_gamma_must_not_increase_and_students_must_be_a_sequence():
    with pytest.raises(ValueError, match=r"gamma of generation 2 \(0.7\) must not exceed that of "
                                         r"generation 1 \(0.5\)"):
        simulate_chain(NOISY, TEACHER, [Student(gamma=0.5), Student(gamma=0.7)], n_features=10)
    with pytest.raises(ValueError, match="non-empty sequence of Student"):
        simulate_chain(NOISY, TEACHER, [], n_features=10)
    with pytest.raises(ValueError, match="non-empty sequence of Student"):
        simulate_chain(NOISY, TEACHER, Student(), n_features=10)
    with pytest.raises(ValueError, match="generation 2 must be a Student"):
        simulate_chain(NOISY, TEACHER, [Student(), TEACHER], n_features=10)


def test_chain_failures_propagate_and_are_named_by_generation():
    ok, bad = np.array([True, True]), np.array([True, False])

    def generation(k, converged, finite, upstream):
        zeros = np.zeros(2)
        return GenerationSimulation(
            generation=k, m=zeros, q=zeros + 1, r=zeros, r_teacher=zeros, b=zeros,
            gen_error=zeros, test_error=zeros, train_error=zeros, train_loss=zeros,
            agreement=zeros, grad_norm=zeros, converged=converged & upstream,
            finite_minimiser=finite, upstream_converged=upstream, n_steps=zeros,
        )

    zeros = np.zeros(2)
    teacher = TeacherSimulation(m=zeros, q=zeros, b=zeros, gen_error=zeros, test_error=zeros,
                                train_error=zeros, train_loss=zeros, grad_norm=zeros,
                                converged=ok, finite_minimiser=ok, n_steps=zeros)
    chain = ChainSimulation(teacher=teacher, generations=(
        generation(1, bad, bad, ok), generation(2, ok, ok, bad), generation(3, ok, ok, bad)))
    assert chain.failure_message() == (
        "generation 1: no finite minimiser in 1 of 2 seeds (lam of generation 1 (hard labels) = 0 "
        "on linearly separable training data: the weight norm diverges)")
    with pytest.raises(ValueError, match="generation 1: no finite minimiser"):
        chain.check()
    with pytest.raises(ValueError, match="generation 3: an earlier generation"):
        chain.generations[2].mean()
    kept = chain.mean(failed="drop")
    assert kept.generations[2].converged == 1.0 and kept.teacher.q == 0.0
    assert chain.mean(failed="keep").converged == 0.5
