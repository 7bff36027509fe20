"""Distillation chains (docs/chains.md): identities of the prototype ``kdjax._chain_prototype``
(all slow: each chain structure compiles for 20-60 s; the prototype moves into kdjax._generations next)."""

import jax
import numpy as np
import pytest

from kdjax import Mixture, SolverConfig, Student, Teacher, solve_student
from kdjax._chain_prototype import solve_chain

pytestmark = pytest.mark.slow

FIELDS = ("gen_error", "m", "q", "r", "b", "agreement", "train_loss")


@pytest.mark.slow  # four compilations, ~20 s each on 2 cores
@pytest.mark.parametrize("data", ["same", "fresh"])
@pytest.mark.parametrize("eta", [0.0, 0.2])
def test_depth_one_chain_is_the_student(data, eta):
    mix, teacher = Mixture(2.0, 1.0, label_noise=eta), Teacher(lam=0.01)
    st = Student(0.7, 2.0, 0.3, 0.01, data=data, alpha=1.5 if data == "fresh" else None)
    cfg = SolverConfig(degree_2d=24)
    ref = solve_student(mix, teacher, st, cfg)
    _, (gen,) = solve_chain(mix, teacher, [st], cfg, degrees=[(24, 24)])
    assert int(gen.result._value) == 0
    np.testing.assert_allclose([getattr(gen, n) for n in FIELDS], [getattr(ref, n) for n in FIELDS], rtol=1e-8, atol=1e-10)


def _copy(gamma):
    return Student(gamma, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("first", ["copy", "kd"])
def test_copying_generations_copy_their_predecessor_at_depth_two_and_three(first):
    """gamma_k = gamma_{k-1}, T = 1, a = 0, lam = 0, same inputs: generation k is generation k-1
    (docs/chains.md, Sec. 6), with label noise, after a copy or after a genuine KD step."""
    mix, teacher = Mixture(2.0, 1.0, label_noise=0.2), Teacher(lam=0.01)
    g1 = _copy(1.0) if first == "copy" else Student(0.7, 2.0, 0.3, 0.01)
    chain = [g1, _copy(g1.gamma), _copy(g1.gamma)]
    t, gens = solve_chain(mix, teacher, chain, SolverConfig(), degrees=[(16, 6), (16, 4, 4), (16, 4, 4, 4)])
    prev = t
    for k, g in enumerate(gens, start=1):
        assert int(g.result._value) == 0
        if k > 1 or first == "copy":
            np.testing.assert_allclose([g.m, g.q, g.b, g.gen_error, g.r], [prev.m, prev.q, prev.b, prev.gen_error, prev.q],
                                       rtol=1e-8, atol=1e-10)
            assert abs(float(g.agreement) - 1.0) < 1e-7
            assert abs(float(g.record.sigma2)) < 1e-12 * float(g.q)
        prev = g


@pytest.mark.slow
def test_hard_label_generation_is_the_hard_label_student():
    """a = 1: generation 2 ignores generation 1's soft labels; its m, q, b are those of a
    one-generation a = 1 student, and it does not respond to the earlier generations (V_2l = 0)."""
    mix, teacher = Mixture(2.0, 1.0, label_noise=0.2), Teacher(lam=0.01)
    hard = Student(0.5, 2.0, 1.0, 0.05)
    _, gens = solve_chain(mix, teacher, [Student(0.8, 2.0, 0.0, 0.01), hard], SolverConfig(),
                          degrees=[(48, 8), (48, 8, 8)])
    ref = solve_student(mix, teacher, hard)
    g = gens[-1]
    np.testing.assert_allclose([g.m, g.q, g.b, g.gen_error], [ref.m, ref.q, ref.b, ref.gen_error], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g.V[:2], 0.0, atol=1e-9)


@pytest.mark.slow
def test_mixed_chain_copy_after_a_fresh_generation():
    """A same-input copy of a fresh-trained generation copies it (its field on the teacher's
    inputs is shifted only by the teacher's response, docs/chains.md Sec. 4)."""
    mix, teacher = Mixture(2.0, 1.0, label_noise=0.2), Teacher(lam=0.01)
    chain = [Student(0.7, 2.0, 0.3, 0.01, data="fresh", alpha=3.0), _copy(0.7), Student(0.5, 2.0, 0.0, 0.01)]
    _, (g1, g2, g3) = solve_chain(mix, teacher, chain, SolverConfig(), degrees=[(48, 8), (48, 8, 8), (48, 8, 8, 8)])
    assert all(int(g.result._value) == 0 for g in (g1, g2, g3))
    np.testing.assert_allclose([g2.m, g2.q, g2.b, g2.gen_error, g2.r], [g1.m, g1.q, g1.b, g1.gen_error, g1.q],
                               rtol=1e-8, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("gammas,a", [((1.0, 1.0, 1.0), 0.0), ((1.0, 0.7, 0.5), 0.3)])
def test_same_input_chain_agrees_with_simulation(gammas, a):
    """Theory vs finite-N simulation of depth-3 same-input chains with label noise (needs
    ``kdjax.simulate_chain``, branch chain-sim; measured numbers in docs/chains.md, Sec. 7)."""
    import kdjax
    if not hasattr(kdjax, "simulate_chain"):
        pytest.skip("kdjax.simulate_chain is not available in this checkout")
    mix, teacher = Mixture(2.0, 1.0, label_noise=0.2), Teacher(lam=0.01)
    chain = [Student(g, 2.0, a, 0.01) for g in gammas]
    _, gens = solve_chain(mix, teacher, chain, SolverConfig())
    sim = kdjax.simulate_chain(mix, teacher, chain, n_features=1000, seeds=6)
    for g, s in zip(gens, sim.generations):
        ok = np.asarray(s.converged)
        assert ok.all()
        for name, allowance in (("gen_error", 0.01), ("agreement", 0.01)):
            x = np.asarray(getattr(s, name))
            sem = x.std(ddof=1) / np.sqrt(len(x))
            assert abs(x.mean() - float(getattr(g, name))) < 3 * sem + allowance, name
