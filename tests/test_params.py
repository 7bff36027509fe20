"""Parameter objects (src/kdjax/_params.py): pytrees with static fields and eager validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from kdjax import Logistic, Mixture, SolverConfig, Student, Teacher


def test_numbers_are_leaves_and_names_are_static():
    s = Student(0.5, 2.0, 0.3, 0.01, "fresh", 2.0)
    assert jax.tree_util.tree_leaves(s) == [0.5, 2.0, 0.3, 0.01, 2.0]
    assert jax.tree_util.tree_leaves(Teacher("logistic", 0.1)) == [0.1]
    assert jax.tree_util.tree_leaves(SolverConfig()) == []
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, Mixture(1.0, 0.5, 0.25))
    assert (doubled.alpha, doubled.delta, doubled.rho) == (2.0, 1.0, 0.5)


def test_vmap_over_a_field_and_replace_validate_only_user_input():
    t = jax.vmap(lambda lam: Teacher("logistic", lam))(jnp.asarray([0.1, 0.2]))
    assert t.loss == Logistic() and t.lam.shape == (2,)
    assert Student().replace(temperature=3.0).temperature == 3.0
    with pytest.raises(ValueError, match=r"temperature must be in \(0.0, inf\), got -1"):
        Student().replace(temperature=-1.0)


@pytest.mark.parametrize("make, text", [
    (lambda: Mixture(0.0, 1.0), "alpha must be in"),
    (lambda: Mixture(1.0, 1.0, 1.0), "rho must be in"),
    (lambda: Teacher("logistic", -0.1), "lam_t must be in"),
    (lambda: Student(gamma=1.5), "gamma must be in"),
    (lambda: Student(data="fresh"), "alpha_s"),
    (lambda: Student(alpha=2.0), "applies only to data='fresh'"),
    (lambda: SolverConfig(damping=0.0), "damping must be in"),
    (lambda: SolverConfig(degree=1), "degree must be an integer >= 2"),
])
def test_bad_values_name_the_parameter_and_its_range(make, text):
    with pytest.raises(ValueError, match=text):
        make()


def test_solver_config_is_hashable_static_configuration():
    assert hash(SolverConfig()) == hash(SolverConfig()) and SolverConfig(tol=1e-8) != SolverConfig()
