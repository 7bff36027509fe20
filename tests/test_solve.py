"""The fixed-point driver (src/kdjax/_solve.py) and the failure contract of the public solves."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import kdjax
from kdjax import RESULTS, Mixture, SolverConfig, Student, Teacher
from kdjax._solve import _eliminate, solve_fixed_point


def test_an_oscillating_map_is_not_reported_converged():
    """``F(x) = -sign(x)`` has no fixed point: the iterates oscillate around 0 with shrinking damped
    steps, while the undamped residual ``|F(x) - x|`` stays near 1."""
    F = lambda x, _: {"x": -jnp.sign(x["x"]) - 0.0 * x["x"]}
    fp = solve_fixed_point(F, {"x": jnp.asarray(0.3)}, None, SolverConfig(max_steps=200))
    assert fp.result == RESULTS.max_steps and not bool(fp.converged)
    assert float(fp.residual) > 0.5


def test_a_contraction_converges_on_its_undamped_residual():
    F = lambda x, a: {"x": jnp.cos(x["x"]) * a}
    fp = solve_fixed_point(F, {"x": jnp.asarray(0.0)}, jnp.asarray(1.0), SolverConfig())
    assert fp.result == RESULTS.successful
    assert abs(float(jnp.cos(fp.x["x"]) - fp.x["x"])) <= 1e-10


def test_a_root_outside_the_admissible_states_is_refused():
    """``x = x^2 - 2`` has the roots 2 and -1, both found; with only ``x > 3`` admitted, neither counts."""
    F = lambda x, _: x**2 - 2.0
    found = solve_fixed_point(F, jnp.asarray(1.9), None, SolverConfig(max_steps=50))
    assert found.result == RESULTS.successful and abs(float(F(found.x, None) - found.x)) < 1e-10
    fp = solve_fixed_point(F, jnp.asarray(1.9), None, SolverConfig(max_steps=50), valid=lambda x: x > 3)
    assert fp.result == RESULTS.inadmissible


TIGHT = SolverConfig(max_steps=2, tol=1e-14)


def test_throw_raises_eagerly_with_the_code_and_not_without():
    mix, teacher = Mixture(2.0, 1.0), Teacher("logistic", 1e-3)
    with pytest.raises(kdjax.SolveError, match="teacher fixed point did not converge") as err:
        kdjax.solve_teacher(mix, teacher, TIGHT)
    assert err.value.result == RESULTS.max_steps
    assert kdjax.solve_teacher(mix, teacher, TIGHT, throw=False).result == RESULTS.max_steps


def test_throw_raises_under_jit():
    mix = Mixture(2.0, 1.0)
    error = jax.jit(lambda lam: kdjax.solve_teacher(mix, Teacher("logistic", lam), TIGHT).gen_error)
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="did not converge within"):
        jax.block_until_ready(error(1e-3))
    quiet = jax.jit(lambda lam: kdjax.solve_teacher(mix, Teacher("logistic", lam), TIGHT, throw=False).result)
    assert quiet(1e-3) == RESULTS.max_steps


def test_result_codes_name_the_failure_under_vmap():
    """No finite minimiser (lam = 0 on separable data) and a failed teacher are coded per point."""
    solve = jax.vmap(lambda a: kdjax.solve_teacher(Mixture(a, 1.0), Teacher("logistic", 0.0), throw=False))
    res = solve(jnp.asarray([2.0, 5.0]))
    assert (res.result == RESULTS.no_finite_minimiser).tolist() == [True, False]
    assert (res.result == RESULTS.successful).tolist() == [False, True]
    assert int(res.iterations[0]) == 0 and int(res.iterations[1]) > 0  # no step where there is no fixed point
    student = kdjax.solve_student(Mixture(2.0, 1.0), Teacher("logistic", 1e-3), Student(0.5, 2.0), TIGHT,
                                  throw=False)
    assert student.result == RESULTS.teacher_failed


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_the_loops_unrolled_elimination_solves_small_systems_to_round_off(n):
    """Partial pivoting: also where a diagonal entry is 0 (no pivot there); a singular system gives
    non-finite values (the loop then takes a damped step instead)."""
    keys = jax.random.split(jax.random.PRNGKey(n), 50)
    for key in keys:
        A = jax.random.normal(key, (n, n))
        A = A.at[0, 0].set(0.0) if n > 1 else A
        b = jax.random.normal(jax.random.fold_in(key, 1), (n,))
        x = _eliminate(A, b)
        assert float(jnp.max(jnp.abs(A @ x - b))) <= 1e-12 * (1.0 + float(jnp.max(jnp.abs(x))))
    assert not bool(jnp.all(jnp.isfinite(_eliminate(jnp.ones((n, n)) * (n > 1), jnp.ones(n)))))
