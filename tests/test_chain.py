"""Distillation chains (kdjax.solve_chain): a fold over generations (src/kdjax/_generations/solve.py);
same-input chains (docs/chains.md, src/kdjax/_generations/same.py)."""

import jax
import numpy as np
import pytest

import kdjax
from kdjax import Mixture, Student, Teacher

MIX = Mixture(2.0, 1.0, 0.5, 0.2)
TEACHER = Teacher("logistic", 0.1)
FRESH = [Student(0.8, 2.0, 0.0, 0.01, data="fresh", alpha=2.0),
         Student(0.6, 2.0, 0.3, 0.01, data="fresh", alpha=3.0),
         Student(0.6, 1.0, 0.0, 0.01, data="fresh", alpha=2.0)]
FIELDS = ("gen_error", "m", "q", "b", "V", "r", "agreement")


def values(res, fields=FIELDS):
    return np.array([float(getattr(res, f)) for f in fields])


@pytest.mark.parametrize("student", [Student(0.5, 2.0, 0.3, 0.01), FRESH[0]], ids=["same", "fresh"])
def test_a_one_generation_chain_is_the_student(student):
    chain = kdjax.solve_chain(MIX, TEACHER, [student])
    single = kdjax.solve_student(MIX, TEACHER, student)
    np.testing.assert_array_equal(values(chain.generations[0]), values(single))
    np.testing.assert_array_equal(values(chain.teacher, FIELDS[:5]), values(single.teacher, FIELDS[:5]))
    # after the teacher the overlap with the teacher is the overlap with the predecessor
    assert float(chain.generations[0].r_teacher) == float(single.r)
    assert chain.converged and int(chain.failed) == -1


@pytest.mark.slow  # the same-input version below runs in the default suite
def test_a_chain_split_into_calls_gives_the_same_numbers():
    whole = kdjax.solve_chain(MIX, TEACHER, FRESH)
    first = kdjax.solve_chain(MIX, TEACHER, FRESH[:2])
    continued = kdjax.solve_chain(MIX, TEACHER, FRESH, x0=first)
    for a, b in zip(first.generations, whole.generations):
        np.testing.assert_allclose(values(a), values(b), rtol=1e-9)
    for b, c in zip(whole.generations, continued.generations):
        np.testing.assert_allclose(values(b), values(c), rtol=1e-9)


def test_each_generation_is_consistent_with_its_predecessor():
    """Cauchy-Schwarz for r (against the previous generation) and for r_teacher, errors in (0, 1/2)."""
    chain = kdjax.solve_chain(MIX, TEACHER, FRESH)
    prev_q = float(chain.teacher.q)
    for g in chain.generations:
        q, r, r0 = float(g.q), float(g.r), float(g.r_teacher)
        assert r * r <= prev_q * q * (1 + 1e-12)
        assert r0 * r0 <= float(chain.teacher.q) * q * (1 + 1e-12)
        assert 0.0 < float(g.gen_error) < 0.5 and 0.5 < float(g.agreement) <= 1.0
        prev_q = q


def test_a_failed_generation_is_named_and_marks_the_later_ones():
    """Generation 1 has no finite minimiser (lam = 0 with alpha_s <= gamma): the chain's result names
    it without iterating (no step is taken where there is no fixed point to find), generation 2 is
    ``teacher_failed``, and with ``throw=True`` the eager check names it."""
    students = [Student(0.8, 2.0, 0.0, 0.0, data="fresh", alpha=0.5), FRESH[1]]
    chain = kdjax.solve_chain(MIX, TEACHER, students, throw=False)
    assert int(chain.failed) == 1 and chain.result == kdjax.RESULTS.no_finite_minimiser
    assert chain.teacher.converged
    assert chain.generations[0].result == kdjax.RESULTS.no_finite_minimiser
    assert int(chain.generations[0].iterations) == 0
    assert chain.generations[1].result == kdjax.RESULTS.teacher_failed
    with pytest.raises(ValueError, match="generation 1"):
        kdjax.solve_chain(MIX, TEACHER, students)


def test_chain_structure_errors_name_the_generation():
    with pytest.raises(ValueError, match="gamma of generation 2 .0.8. must not exceed"):
        kdjax.solve_chain(MIX, TEACHER, [FRESH[1], FRESH[0]])
    with pytest.raises(ValueError, match="gamma of generation 3 .0.7. must not exceed"):
        kdjax.solve_chain(MIX, TEACHER, [Student(0.8, 2.0), Student(0.5, 2.0), Student(0.7, 2.0)])
    with pytest.raises(ValueError, match="generation 1"):
        kdjax.solve_chain(MIX, TEACHER, ["not a student"])
    with pytest.raises(ValueError, match="at least one"):
        kdjax.solve_chain(MIX, TEACHER, [])


@pytest.mark.slow  # depth 2 on the same inputs runs in the default suite
def test_the_last_generation_error_is_differentiable_in_every_generation():
    """jax.grad through three fixed points against central differences."""
    def err(lam_t, T1, eta):
        students = [FRESH[0].replace(temperature=T1), FRESH[1]]
        chain = kdjax.solve_chain(MIX.replace(label_noise=eta), Teacher("logistic", lam_t), students)
        return chain.generations[-1].gen_error

    args = (0.1, 2.0, 0.2)
    grads = jax.grad(err, argnums=(0, 1, 2))(*args)
    for i, g in enumerate(grads):
        h = 1e-5
        up, down = list(args), list(args)
        up[i] += h
        down[i] -= h
        fd = (float(err(*up)) - float(err(*down))) / (2 * h)
        assert float(g) == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.slow
def test_fresh_chain_agrees_with_simulation():
    """Depth-3 fresh chain with label noise, N = 1000, 6 seeds: m, q, r, r_teacher and the error."""
    chain = kdjax.solve_chain(MIX, TEACHER, FRESH)
    sims = kdjax.simulate.simulate_chain(MIX, TEACHER, FRESH, n_features=1000, seeds=6)
    mean, sem = sims.mean(), sims.sem()
    for g, gm, gs in zip(chain.generations, mean.generations, sem.generations):
        for f in ("m", "q", "r", "r_teacher", "gen_error"):
            th, mu, se = float(getattr(g, f)), float(getattr(gm, f)), float(getattr(gs, f))
            assert abs(th - mu) <= 3.5 * se + 0.02 * (abs(th) + 1) * 1000 / 1000, (f, th, mu, se)


def test_public_solves_run_under_a_users_jit():
    """Regression: the chain's structure checks must not read traced values (jax.jit(kdjax.solve_student))."""
    student = Student(0.5, 2.0)
    jitted = jax.jit(kdjax.solve_student)(MIX, TEACHER, student)
    assert float(jitted.gen_error) == pytest.approx(float(kdjax.solve_student(MIX, TEACHER, student).gen_error),
                                                    rel=1e-12)


# Same-input chains after a genuine KD step (docs/chains.md).  One structure (same, same) in the default
# suite: each same-input structure compiles once per process (15-30 s on 2 cores).
NOISY = Mixture(2.0, 1.0, label_noise=0.2)
KD_STEP = Student(0.7, 2.0, 0.3, 0.01)


def copy_of(gamma):
    """A generation that copies its predecessor: its gamma, T = 1, a = 0, lam = 0, same inputs."""
    return Student(gamma, 1.0, 0.0, 0.0)


def test_a_copying_same_input_generation_copies_its_predecessor():
    """docs/chains.md Sec. 6: generation 2 = generation 1 at the fixed point, with label noise."""
    chain = kdjax.solve_chain(NOISY, Teacher("logistic", 0.01), [KD_STEP, copy_of(KD_STEP.gamma)])
    g1, g2 = chain.generations
    assert chain.converged
    np.testing.assert_allclose(values(g2, ("m", "q", "b", "gen_error")), values(g1, ("m", "q", "b", "gen_error")),
                               rtol=1e-8, atol=1e-10)
    assert float(g2.r) == pytest.approx(float(g1.q), rel=1e-8)
    assert float(g2.r_teacher) == pytest.approx(float(g1.r_teacher), rel=1e-8)
    assert float(g2.agreement) == pytest.approx(1.0, abs=1e-7)
    assert abs(float(g2.state.sigma2)) < 1e-10 * float(g2.q)


def test_same_input_chain_split_into_calls_gives_the_same_numbers():
    teacher = Teacher("logistic", 0.01)
    students = [KD_STEP, copy_of(KD_STEP.gamma)]
    first = kdjax.solve_chain(NOISY, teacher, students[:1])
    whole = kdjax.solve_chain(NOISY, teacher, students)
    continued = kdjax.solve_chain(NOISY, teacher, students, x0=first)
    np.testing.assert_allclose(values(first.generations[0]), values(whole.generations[0]), rtol=1e-12)
    for b, c in zip(whole.generations, continued.generations):
        np.testing.assert_allclose(values(b), values(c), rtol=1e-9)


def test_same_input_chain_error_is_differentiable_in_every_generation():
    """jax.grad of generation 2's error in each generation's T, a, lam, the teacher's lam and the
    label noise, through three fixed points, against central differences."""
    names = ("lam_t", "eta", "T1", "a1", "lam1", "T2", "a2", "lam2")

    def err(lam_t, eta, T1, a1, lam1, T2, a2, lam2):
        students = [Student(KD_STEP.gamma, T1, a1, lam1), Student(0.5, T2, a2, lam2)]
        chain = kdjax.solve_chain(NOISY.replace(label_noise=eta), Teacher("logistic", lam_t), students)
        return chain.generations[-1].gen_error

    args = (0.01, 0.2, 2.0, 0.3, 0.01, 1.5, 0.2, 0.02)
    # the eager jax.grad: one program per generation with its Jacobian (kdjax._compile), compiled
    # quicker than jax.jit(jax.grad(err)); the differences reuse the compiled forward solves
    grads = jax.grad(err, argnums=tuple(range(len(args))))(*args)
    for i, g in enumerate(grads):
        h = 1e-5 * max(abs(args[i]), 1e-2)
        up, down = list(args), list(args)
        up[i] += h
        down[i] -= h
        fd = (float(err(*up)) - float(err(*down))) / (2 * h)
        assert float(g) == pytest.approx(fd, rel=2e-5, abs=1e-8), names[i]


@pytest.mark.slow
@pytest.mark.parametrize("first", ["copy", "kd"])
def test_copying_generations_copy_their_predecessor_at_depth_three(first):
    teacher = Teacher("logistic", 0.01)
    g1 = copy_of(1.0) if first == "copy" else KD_STEP
    chain = kdjax.solve_chain(NOISY, teacher, [g1, copy_of(g1.gamma), copy_of(g1.gamma)])
    assert chain.converged
    prev = chain.teacher
    for k, g in enumerate(chain.generations, start=1):
        if k > 1 or first == "copy":
            np.testing.assert_allclose(values(g, ("m", "q", "b", "gen_error")),
                                       values(prev, ("m", "q", "b", "gen_error")), rtol=1e-8, atol=1e-10)
            assert float(g.agreement) == pytest.approx(1.0, abs=1e-7)
        prev = g


@pytest.mark.slow
def test_hard_label_generation_is_the_hard_label_student():
    """a = 1: generation 2 ignores generation 1; its m, q, b are those of a one-generation a = 1
    student, and it does not respond to the earlier generations (V_2l = 0, docs/chains.md Sec. 6)."""
    teacher = Teacher("logistic", 0.01)
    hard = Student(0.5, 2.0, 1.0, 0.05)
    chain = kdjax.solve_chain(NOISY, teacher, [Student(0.8, 2.0, 0.0, 0.01), hard])
    ref = kdjax.solve_student(NOISY, teacher, hard)
    g = chain.generations[-1]
    np.testing.assert_allclose(values(g, ("m", "q", "b", "gen_error")), values(ref, ("m", "q", "b", "gen_error")),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g.state.V[:2], 0.0, atol=1e-9)


@pytest.mark.slow
def test_mixed_chain_copy_after_a_fresh_generation():
    """A same-input copy of a fresh-trained generation copies it (docs/chains.md Sec. 4), and a
    same-input KD generation after it solves."""
    teacher = Teacher("logistic", 0.01)
    students = [Student(0.7, 2.0, 0.3, 0.01, data="fresh", alpha=3.0), copy_of(0.7), Student(0.5, 2.0, 0.0, 0.01)]
    chain = kdjax.solve_chain(NOISY, teacher, students)
    g1, g2, _ = chain.generations
    assert chain.converged
    np.testing.assert_allclose(values(g2, ("m", "q", "b", "gen_error")), values(g1, ("m", "q", "b", "gen_error")),
                               rtol=1e-8, atol=1e-10)
    assert float(g2.r) == pytest.approx(float(g1.q), rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("gammas,a", [((1.0, 1.0, 1.0), 0.0), ((1.0, 0.7, 0.5), 0.3)], ids=["sd", "shrinking"])
def test_same_input_chain_agrees_with_simulation(gammas, a):
    """Depth-3 same-input chains with label noise against kdjax.simulate.simulate_chain (N = 1000, 6 seeds)."""
    teacher = Teacher("logistic", 0.01)
    students = [Student(g, 2.0, a, 0.01) for g in gammas]
    chain = kdjax.solve_chain(NOISY, teacher, students)
    sims = kdjax.simulate.simulate_chain(NOISY, teacher, students, n_features=1000, seeds=6)
    mean, sem = sims.mean(), sims.sem()
    for g, gm, gs in zip(chain.generations, mean.generations, sem.generations):
        for f in ("gen_error", "agreement", "train_error"):
            th, mu, se = float(getattr(g, f)), float(getattr(gm, f)), float(getattr(gs, f))
            assert abs(th - mu) <= 3.5 * se + 0.005, (f, th, mu, se)


@pytest.mark.slow
@pytest.mark.parametrize("depth,refined", [(2, (96, 16)), (3, (96, 12)), (4, (64, 8))])
@pytest.mark.parametrize("gammas,a", [((1.0,) * 4, 0.0), ((1.0, 0.7, 0.5, 0.4), 0.3)], ids=["sd", "shrinking"])
def test_the_default_nested_rule_is_accurate_to_1e6(depth, refined, gammas, a):
    """The default rule of a same-input generation (SolverConfig.chain_nodes = ()) against a refined one:
    gen_error to 1e-6 at depth 2 to 4 (docs/chains.md, Sec. 7)."""
    teacher = Teacher("logistic", 0.01)
    students = [Student(g, 2.0, a, 0.01) for g in gammas[:depth]]
    default = kdjax.solve_chain(NOISY, teacher, students).generations[-1]
    fine = kdjax.solve_chain(NOISY, teacher, students, kdjax.SolverConfig(chain_nodes=refined)).generations[-1]
    assert abs(float(default.gen_error) - float(fine.gen_error)) < 1e-6
    assert float(default.q) == pytest.approx(float(fine.q), rel=1e-4)


@pytest.mark.slow
def test_sweep_over_a_later_generation_matches_the_chain_solves():
    """kdjax.sweep over gen2.temperature of a same-input chain: each point equals solve_chain (the first
    point of a row starts every generation from its own start, the next ones from their neighbour)."""
    teacher = Teacher("logistic", 0.01)
    students = (KD_STEP, Student(0.5, 2.0, 0.3, 0.01))
    temps = [1.5, 2.0, 3.0]
    res = kdjax.sweep(NOISY, teacher, students, {"gen2.temperature": temps})
    assert np.all(res.converged)
    for i, T in enumerate(temps):
        chain = kdjax.solve_chain(NOISY, teacher, (students[0], students[1].replace(temperature=T)))
        for k, g in enumerate(chain.generations):
            assert float(res.generations[k].gen_error[i]) == pytest.approx(float(g.gen_error), rel=1e-9)
