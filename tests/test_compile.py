"""kdjax's programs (kdjax._compile.jit): compiled with the fast-compile option where JAX takes it,
plainly where the call is staged into a larger program; the same numbers either way."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdjax
from kdjax import _compile


def test_this_jax_takes_the_fast_compile_option():
    assert _compile.compiler_options() == _compile.FAST_COMPILE


def test_an_xla_that_refuses_the_option_gets_xla_defaults(monkeypatch):
    monkeypatch.setattr(_compile, "FAST_COMPILE", {"xla_no_such_option_in_any_xla": False})
    monkeypatch.setattr(_compile, "_REFUSED", [])
    f = _compile.jit(lambda x: jnp.cos(x) * 2.0)
    np.testing.assert_allclose(f(0.5), 2.0 * np.cos(0.5), rtol=1e-15)
    assert _compile.compiler_options() is None and f.jitted is f.staged
    np.testing.assert_allclose(_compile.jit(jnp.sin)(0.5), np.sin(0.5), rtol=1e-15)  # later programs: defaults at once


def test_a_program_composes_with_every_transformation():
    calls = []

    @_compile.jit(static_argnames=("power",))
    def f(x, *, power):
        calls.append(type(x).__name__)
        return jnp.sin(x) ** power

    x = jnp.linspace(0.1, 1.0, 4)
    want = np.sin(np.asarray(x)) ** 3
    np.testing.assert_allclose(f(x, power=3), want, rtol=1e-14)
    # jax.vmap of concrete values on a CPU: the compiled program point by point (no batched program),
    # equal to the single calls to the last bit
    single = [f(v, power=3) for v in x]
    np.testing.assert_array_equal(jax.vmap(lambda v: f(v, power=3))(x), np.asarray(single))
    assert "BatchTracer" not in calls
    np.testing.assert_allclose(jax.vmap(jax.vmap(lambda v: f(v, power=3)))(x[None]), want[None], rtol=1e-14)
    np.testing.assert_allclose(jax.jit(lambda v: f(v, power=3))(x), want, rtol=1e-14)
    grad = jax.vmap(jax.grad(lambda v: f(v, power=3)))(x)  # staged: the plain jit
    np.testing.assert_allclose(grad, 3 * np.sin(np.asarray(x)) ** 2 * np.cos(np.asarray(x)), rtol=1e-13)
    tangent = jax.jvp(lambda v: f(v, power=3), (x,), (jnp.ones_like(x),))[1]
    np.testing.assert_allclose(tangent, grad, rtol=1e-13)
    assert f.jitted is not f.staged  # two programs: with and without the option


def test_reverse_mode_linearises_a_program_densely():
    """Under ``jax.grad`` a program is one compiled call returning its outputs and their Jacobian
    (with the option); the tangent is a matrix product.  Integer outputs, unused and undifferentiated
    inputs, and a user's ``jit`` around the gradient give the same derivatives as JAX's own."""

    @_compile.jit(static_argnames=("power",))
    def f(x, y, n, *, power):
        return {"value": jnp.sin(x) ** power * y[0] + y[1] ** 2, "count": n + 1, "pair": (x * y, jnp.cos(x))}

    def loss(x, y, program):
        out = program(x, y, jnp.asarray(3), power=2)
        return out["value"] + jnp.sum(out["pair"][0]) * out["pair"][1] + out["count"]

    def reference(x, y):
        return loss(x, y, lambda *a, **k: f.__wrapped__(*a, **k))

    x, y = 0.7, jnp.asarray([1.3, -0.4])
    want = jax.grad(reference, argnums=(0, 1))(x, y)
    both = jax.grad(loss, argnums=(0, 1))
    for got in (both(x, y, f), jax.jit(both, static_argnums=2)(x, y, f), jax.grad(loss, argnums=1)(x, y, f)):
        got = got if isinstance(got, tuple) else (want[0], got)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-13)
    assert f._dense is not None  # the dense program was compiled (not JAX's staged linearisation)
    hessian = jax.hessian(loss)(x, y, f)
    np.testing.assert_allclose(hessian, jax.hessian(reference)(x, y), rtol=1e-12)


def test_second_derivatives_of_a_fixed_point_match_differences_of_its_gradient():
    """The implicit derivative differentiates the map's Jacobian at the solution (second order), so
    ``jax.hessian`` of an error is the difference quotient of its gradient, and symmetric."""
    def err(lam, alpha):
        mixture = kdjax.Mixture(alpha=alpha, delta=1.0, rho=0.4)
        return kdjax.solve_teacher(mixture, kdjax.Teacher("logistic", lam)).gen_error

    point, h = (0.1, 2.0), 1e-4
    hessian = np.asarray(jax.hessian(err, argnums=(0, 1))(*point))
    grad = jax.jit(jax.grad(err, argnums=(0, 1)))
    for i in range(2):
        up, down = list(point), list(point)
        up[i] += h
        down[i] -= h
        column = (np.asarray(grad(*up)) - np.asarray(grad(*down))) / (2 * h)
        np.testing.assert_allclose(hessian[:, i], column, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(hessian[0, 1], hessian[1, 0], rtol=1e-10)


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
        # (atol: b is 0 at rho = 1/2, to round-off)
        np.testing.assert_allclose(float(getattr(plain, name)), float(getattr(fast, name)), rtol=1e-9, atol=1e-13)
    with pytest.raises(ValueError, match="fast_compile must be True or False"):
        kdjax.SolverConfig(fast_compile="yes")


def test_vmap_of_concrete_values_runs_the_programs_a_plain_call_compiled(caplog):
    """The README's ``jax.vmap`` over the teacher's ridge after plain calls: each point's parameters
    reach the programs as the Python floats of a plain call and its positive ridge skips the regime
    test, so no generation program (and no regime test) is compiled again, and the values are
    those of plain calls."""
    mix = kdjax.Mixture(alpha=2.5, delta=1.0, rho=0.4)
    student = kdjax.Student(gamma=0.5, temperature=2.0, hard_weight=0.3, lam=0.01)
    err = lambda lam_t: kdjax.solve_student(mix, kdjax.Teacher("logistic", lam_t), student).gen_error
    plain = [float(err(lam)) for lam in (0.05, 0.5)]
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        batched = jax.vmap(err)(jnp.asarray([0.05, 0.5]))
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling")]
    assert compiled and not [m for m in compiled if "solve_generation" in m or "_finite" in m], compiled
    np.testing.assert_allclose(np.asarray(batched), plain, rtol=1e-13)
