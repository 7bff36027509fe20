"""Teacher theory: closed forms, numerical convergence, conventions, transformations, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdjax
from kdjax import Mixture, SolverConfig, Teacher, solve_teacher


def square_closed_form(alpha, delta, rho, lam):
    """The square-loss fixed point solved by hand: linear prox, everything in closed form."""
    V = (-(lam + alpha * delta - delta) + np.sqrt((lam + alpha * delta - delta) ** 2 + 4 * lam * delta)) / (2 * lam)
    kappa = 4 * rho * (1 - rho)
    m = alpha * kappa / (lam * (1 + V) + alpha * delta + alpha * kappa)
    b = (2 * rho - 1) * (1 - m)
    V_hat = alpha * delta / (1 + V)
    m_hat = alpha * kappa * (1 - m) / (1 + V)
    C = (1 - m) ** 2 - 2 * b * (1 - m) * (2 * rho - 1) + b**2
    q = (m_hat**2 + alpha * delta * C / (1 + V) ** 2) / ((lam + V_hat) ** 2 - alpha * delta**2 / (1 + V) ** 2)
    return m, q, b, V


@pytest.mark.parametrize("alpha,delta,rho,lam", [(2.0, 1.0, 0.5, 0.1), (0.5, 0.5, 0.3, 1.0), (4.0, 2.0, 0.8, 0.01)])
def test_square_loss_matches_its_closed_form(alpha, delta, rho, lam):
    r = solve_teacher(Mixture(alpha, delta, rho), Teacher("square", lam))
    m, q, b, V = square_closed_form(alpha, delta, rho, lam)
    np.testing.assert_allclose([r.m, r.q, r.b, r.V], [m, q, b, V], rtol=1e-9, atol=1e-11)
    assert bool(r.converged)


@pytest.mark.parametrize("loss,lam,alpha", [("logistic", 0.1, 3.0), ("logistic", 0.0, 5.0), ("hinge", 0.1, 2.0),
                                            ("square", 0.01, 1.5)])
def test_defaults_are_converged_to_1e8(loss, lam, alpha):
    mix, t = Mixture(alpha, 1.0, 0.4), Teacher(loss, lam)
    base = solve_teacher(mix, t)
    fine = solve_teacher(mix, t, SolverConfig(degree=128, newton_steps=80, tol=1e-13))
    for f in ("m", "q", "b", "gen_error", "train_error", "train_loss"):
        assert abs(float(getattr(base, f)) - float(getattr(fine, f))) < 1e-8, f


def test_hinge_closed_form_pieces_agree_with_quadrature():
    from kdjax import Loss

    y = jnp.asarray([[1.0], [-1.0]])
    mean, sd, V = y * 1.3 + 0.2, 1.7, 0.8
    exact = kdjax.Hinge().moments(y, mean, sd, V, 128, 100)
    approx = Loss.moments(kdjax.Hinge(), y, mean, sd, V, 4000, 100)  # the generic quadrature
    for f in ("f2", "D", "f", "loss"):
        np.testing.assert_allclose(getattr(exact, f), getattr(approx, f), atol=1e-3)


def test_label_flip_symmetry_rho_to_one_minus_rho_flips_bias():
    a = solve_teacher(Mixture(2.0, 1.0, 0.3), Teacher("logistic", 0.2))
    b = solve_teacher(Mixture(2.0, 1.0, 0.7), Teacher("logistic", 0.2))
    np.testing.assert_allclose([a.m, a.q, a.gen_error, a.train_error], [b.m, b.q, b.gen_error, b.train_error],
                               rtol=1e-9)
    np.testing.assert_allclose(a.b, -b.b, atol=1e-10)


def test_gen_error_is_the_model_formula_at_the_overlaps():
    r = solve_teacher(Mixture(2.0, 0.7, 0.35), Teacher("logistic", 0.05))
    Phi = jax.scipy.special.ndtr
    s = np.sqrt(0.7 * r.q)
    expected = 0.35 * Phi(-(r.m + r.b) / s) + 0.65 * Phi(-(r.m - r.b) / s)
    np.testing.assert_allclose(r.gen_error, expected, rtol=1e-12)


def test_jit_vmap_grad_compose():
    def err(lam, alpha):
        return solve_teacher(Mixture(alpha, 1.0), Teacher("logistic", lam)).gen_error

    lams = jnp.asarray([0.01, 0.1, 1.0])
    batched = jax.jit(jax.vmap(err, in_axes=(0, None)))(lams, 2.0)
    single = [float(solve_teacher(Mixture(2.0, 1.0), Teacher("logistic", float(l))).gen_error) for l in lams]
    np.testing.assert_allclose(batched, single, rtol=1e-10)
    g = jax.grad(err)(0.1, 2.0)
    h = 1e-5
    fd = (err(0.1 + h, 2.0) - err(0.1 - h, 2.0)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: Mixture(0.0, 1.0), "alpha"),
        (lambda: Mixture(1.0, -1.0), "delta"),
        (lambda: Mixture(1.0, 1.0, 1.0), "rho"),
        (lambda: Teacher("logistic", -0.1), "lam_t"),
        (lambda: Teacher("exp", 0.1), "teacher loss"),
        (lambda: Mixture(float("nan"), 1.0), "alpha"),
    ],
)
def test_invalid_input_is_a_value_error_naming_the_parameter(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


@pytest.mark.parametrize("loss,alpha", [("logistic", 2.0), ("hinge", 3.0), ("square", 0.8)])
def test_no_finite_minimiser_regime_is_refused(loss, alpha):
    with pytest.raises(ValueError, match="lam_t = 0"):
        solve_teacher(Mixture(alpha, 1.0), Teacher(loss, 0.0))


def test_no_finite_minimiser_is_flagged_under_vmap():
    res = jax.vmap(lambda a: kdjax.solve_teacher(Mixture(a, 1.0), Teacher("logistic", 0.0), throw=False))(
        jnp.asarray([2.0, 5.0])
    )
    assert not bool(res.finite_minimiser[0]) and not bool(res.converged[0])
    assert bool(res.finite_minimiser[1]) and bool(res.converged[1])


def test_iteration_limit_is_never_reported_converged():
    r = kdjax.solve_teacher(Mixture(2.0, 1.0), Teacher("logistic", 1e-3), SolverConfig(max_steps=2, tol=1e-14),
                            throw=False)
    # Two damped steps and at most 64 Newton steps: if Newton fails the flag must say so.
    assert bool(r.converged) == bool(r.residual <= 1e-12)


def test_float32_smoke():
    """A caller without x64 gets float32 results (run in a fresh interpreter: tests enable x64)."""
    import subprocess
    import sys

    code = (
        "import kdjax, jax.numpy as jnp\n"
        "r = kdjax.solve_student(kdjax.Mixture(2.0, 1.0), kdjax.Teacher('logistic', 0.1), kdjax.Student(0.5, 2.0),"
        " kdjax.SolverConfig(tol=1e-5))\n"
        "assert r.m.dtype == jnp.float32 and r.teacher.m.dtype == jnp.float32\n"
        "assert 0 < float(r.gen_error) < 0.5 and 0 < float(r.teacher.gen_error) < 0.5\n"
        "print(float(r.gen_error))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("call,needle", [
    (lambda M, T: kdjax.solve_teacher(M, "logistic"), "teacher must be a Teacher"),
    (lambda M, T: kdjax.solve_teacher(T, M), "mixture must be a Mixture"),
    (lambda M, T: kdjax.solve_student(M, T, None), "student must be a Student"),
    (lambda M, T: kdjax.solve_teacher(M, T, "x"), "config must be a SolverConfig"),
    (lambda M, T: kdjax.solve_teacher(kdjax.Mixture(np.array([1.0, 2.0]), 1.0), T), "mixture must hold scalar values"),
])
def test_solver_arguments_are_checked_by_name(call, needle):
    with pytest.raises(ValueError, match=needle):
        call(kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1))
