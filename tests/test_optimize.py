"""``optimize_kd`` on distillation chains: the objective's implicit gradient, the descent, the best depth.

Depth-2 fresh chains (every generation on new inputs, label noise 0.2); free names ``genK.NAME``.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import Mixture, SolverConfig, Student, Teacher, optimize_kd
from kdjax._optimize import _evaluator, _from_free, _start, _to_free

MIX = Mixture(2.0, 1.0, 0.5, 0.2)


def fresh(T=1.0, lam=0.01):
    return Student(1.0, T, hard_weight=0.0, lam=lam, data="fresh", alpha=2.0)


def evaluator(mixture, teacher, chain, free):
    """The objective optimize_kd descends (value, gradient in its unconstrained coordinates; the
    same compiled function) and the starting coordinates."""
    base = (mixture, teacher, chain)
    evaluate = _evaluator(base, free, "student", SolverConfig())

    def f(u):
        value, grad, _ = evaluate(jnp.asarray(u, dtype=jnp.float64))
        return float(value), np.asarray(grad)

    return f, _start(base, free)


@pytest.mark.slow  # the implicit gradient of a depth-2 chain vs differences runs by default in test_chain.py
def test_chain_objective_gradient_matches_central_differences():
    free = ("gen1.temperature", "gen2.temperature", "gen2.lam_s", "lam_t", "label_noise")
    f, x = evaluator(MIX, Teacher("logistic", 0.1), (fresh(2.0, 0.01), fresh(1.5, 0.02)), free)
    value, grad = f(x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    h = 1e-4
    for i, name in enumerate(free):
        e = jnp.zeros_like(x).at[i].set(h)
        fd = (f(x + e)[0] - f(x - e)[0]) / (2 * h)
        assert abs(grad[i]) > 1e-5, name  # a derivative worth comparing
        assert abs(fd - grad[i]) <= 1e-5 * abs(grad[i]), (name, grad[i], fd)


def test_optimize_kd_on_a_depth_2_chain_beats_its_start_and_a_grid():
    teacher, chain = Teacher("logistic", 0.01), (fresh(), fresh())
    free = ("gen1.temperature", "gen2.temperature")
    calls = []
    opt = optimize_kd(MIX, teacher, chain, free, steps=15, tol=1e-9, progress=lambda *a: calls.append(a))
    start = float(opt.path["gen_error"][0])
    assert opt.converged
    assert opt.gen_error < start - 1e-5
    # a grid over the same two temperatures, through the same compiled objective
    f, _ = evaluator(MIX, teacher, chain, free)
    temps = np.geomspace(0.3, 10.0, 4)
    grid = [f(jnp.stack([_to_free("temperature", a), _to_free("temperature", b)]))[0]
            for a in temps for b in temps]
    assert opt.gen_error <= np.nanmin(grid) + 1e-4, (opt.gen_error, np.nanmin(grid))
    # the reported optimum and its chain
    assert set(opt.params) == set(free)
    assert isinstance(opt.student, tuple) and len(opt.student) == 2
    assert float(opt.student[1].temperature) == pytest.approx(opt.params["gen2.temperature"], rel=1e-12)
    assert len(opt.chain_errors) == 3
    assert opt.chain_errors[-1] == pytest.approx(opt.gen_error, abs=1e-14)
    assert opt.best_depth == int(np.argmin(opt.chain_errors))
    assert opt.chain_errors[opt.best_depth] == min(opt.chain_errors)
    # the chain errors are those of the compiled objective at the reported optimum
    at = f(jnp.stack([_to_free(n, opt.params[n]) for n in free]))[0]
    assert at == pytest.approx(opt.gen_error, abs=1e-12)
    # progress: (iteration, steps, gen_error) at the start and after every iteration
    assert calls[0] == (0, 15, pytest.approx(start))
    assert [c[0] for c in calls] == list(range(len(opt.path["gen_error"])))
    assert calls[-1][2] == pytest.approx(opt.path["gen_error"][-1])
    # progress=True: a tqdm bar (same compiled objective, one iteration)
    one = optimize_kd(MIX, teacher, chain, free, steps=1, progress=True)
    assert len(one.path["gen_error"]) <= 2


def test_chain_free_names_are_checked():
    teacher = Teacher("logistic", 0.01)
    with pytest.raises(ValueError, match="generation 3 of a chain of 2"):
        optimize_kd(MIX, teacher, (fresh(), fresh()), ("gen3.temperature",))
    with pytest.raises(ValueError, match="gen1.temperature"):  # plain name, generations disagree
        optimize_kd(MIX, teacher, (fresh(1.0), fresh(2.0)), ("temperature",))
    with pytest.raises(ValueError, match="unknown parameter"):
        optimize_kd(MIX, teacher, (fresh(), fresh()), ("gen1.lam_t",))
    with pytest.raises(ValueError, match="progress"):
        optimize_kd(MIX, teacher, (fresh(), fresh()), ("gen1.temperature",), progress="yes")


def test_free_coordinates_of_generation_names():
    for name, value in (("gen2.temperature", 3.0), ("gen1.hard_weight", 0.3), ("gen3.lam_s", 0.02),
                        ("label_noise", 0.2)):
        assert float(_from_free(name, _to_free(name, value))) == pytest.approx(value, rel=1e-12)
