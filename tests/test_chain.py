"""Distillation chains (kdjax.solve_chain): a fold over generations (src/kdjax/_generations/solve.py)."""

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


def test_a_chain_split_into_calls_gives_the_same_numbers():
    whole = kdjax.solve_chain(MIX, TEACHER, FRESH)
    first = kdjax.solve_chain(MIX, TEACHER, FRESH[:2])
    continued = kdjax.solve_chain(MIX, TEACHER, FRESH, x0=first)
    for a, b, c in zip(first.generations, whole.generations, continued.generations):
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


def test_chain_structure_errors_name_the_generation():
    with pytest.raises(ValueError, match="gamma of generation 2 .0.8. must not exceed"):
        kdjax.solve_chain(MIX, TEACHER, [FRESH[1], FRESH[0]])
    with pytest.raises(NotImplementedError, match="generation 2 trains on the teacher's inputs"):
        kdjax.solve_chain(MIX, TEACHER, [Student(0.5, 2.0), Student(0.5, 2.0)])
    with pytest.raises(ValueError, match="generation 1"):
        kdjax.solve_chain(MIX, TEACHER, ["not a student"])
    with pytest.raises(ValueError, match="at least one"):
        kdjax.solve_chain(MIX, TEACHER, [])


def test_the_last_generation_error_is_differentiable_in_every_generation():
    """jax.grad through three fixed points against central differences."""
    def err(lam_t, T1, eta):
        students = [FRESH[0].replace(temperature=T1), FRESH[1]]
        return kdjax.solve_chain(MIX.replace(label_noise=eta), Teacher("logistic", lam_t), students).generations[-1].gen_error

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
