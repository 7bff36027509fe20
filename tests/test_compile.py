"""kdjax's programs (kdjax._compile.jit): compiled with the fast-compile option where JAX takes it,
plainly where the call is staged into a larger program; the same numbers either way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdjax
from kdjax import _compile


def test_this_jax_takes_the_fast_compile_option():
    assert _compile.compiler_options() == _compile.FAST_COMPILE


def test_a_program_composes_with_every_transformation():
    calls = []

    @_compile.jit(static_argnames=("power",))
    def f(x, *, power):
        calls.append(type(x).__name__)
        return jnp.sin(x) ** power

    x = jnp.linspace(0.1, 1.0, 4)
    want = np.sin(np.asarray(x)) ** 3
    np.testing.assert_allclose(f(x, power=3), want, rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(lambda v: f(v, power=3))(x), want, rtol=1e-14)
    np.testing.assert_allclose(jax.jit(lambda v: f(v, power=3))(x), want, rtol=1e-14)
    grad = jax.vmap(jax.grad(lambda v: f(v, power=3)))(x)  # staged: the plain jit
    np.testing.assert_allclose(grad, 3 * np.sin(np.asarray(x)) ** 2 * np.cos(np.asarray(x)), rtol=1e-13)
    tangent = jax.jvp(lambda v: f(v, power=3), (x,), (jnp.ones_like(x),))[1]
    np.testing.assert_allclose(tangent, grad, rtol=1e-13)
    assert f.jitted is not f.staged  # two programs: with and without the option


def test_ranges_are_checked_eagerly_under_grad():
    """Under ``jax.grad`` (outside ``jit``) the values are concrete: the eager checks apply."""
    mix = kdjax.Mixture(alpha=3.0, delta=1.0)
    student = kdjax.Student(gamma=0.5, temperature=2.0, lam=0.01)

    def err(lam_t, T):
        return kdjax.solve_student(mix, kdjax.Teacher("logistic", lam_t), student.replace(temperature=T)).gen_error

    with pytest.raises(ValueError, match="lam_t must be in"):
        jax.grad(err)(-0.1, 2.0)
    with pytest.raises(ValueError, match="temperature must be in"):
        jax.grad(err, argnums=1)(0.1, -1.0)
    separable = kdjax.Mixture(0.5, 4.0)
    with pytest.raises(ValueError, match="no finite minimiser"):
        jax.grad(lambda lam: kdjax.solve_teacher(separable, kdjax.Teacher("logistic", lam)).gen_error)(0.0)


def test_fast_compile_false_gives_the_same_solve_compiled_with_xla_defaults():
    mix, teacher = kdjax.Mixture(alpha=3.0, delta=1.0), kdjax.Teacher("logistic", 0.1)
    fast = kdjax.solve_teacher(mix, teacher)
    plain = kdjax.solve_teacher(mix, teacher, kdjax.SolverConfig(fast_compile=False))
    for name in ("gen_error", "m", "q", "b", "V"):
        np.testing.assert_allclose(float(getattr(plain, name)), float(getattr(fast, name)), rtol=1e-9)
    with pytest.raises(ValueError, match="fast_compile must be True or False"):
        kdjax.SolverConfig(fast_compile="yes")
