"""Exact hyperparameter gradients (implicit differentiation through both fixed points)
against central finite differences, in reverse and forward mode."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import Mixture, SolverConfig, Student, Teacher, solve_student

pytestmark = pytest.mark.slow  # long-running: `pytest -m slow`

NAMES = ("lam_t", "temperature", "hard_weight", "lam_s", "alpha", "delta", "gamma")
CONFIG = SolverConfig(tol=1e-12)

# (teacher loss, data, alpha_s, point as NAMES-ordered values, rho)
POINTS = [
    ("logistic", "same", None, (0.1, 2.0, 0.3, 0.01, 2.0, 1.0, 0.5), 0.5),
    ("logistic", "same", None, (1.0, 0.7, 0.1, 0.1, 0.6, 0.5, 0.7), 0.3),
    ("logistic", "same", None, (0.03, 4.0, 0.6, 0.05, 3.0, 1.5, 0.9), 0.5),
    ("logistic", "fresh", 2.5, (0.1, 2.0, 0.3, 0.01, 2.0, 1.0, 0.5), 0.5),
    ("logistic", "fresh", 0.8, (0.5, 1.0, 0.2, 0.2, 1.5, 0.8, 0.6), 0.4),
    ("square", "same", None, (0.1, 1.5, 0.3, 0.02, 2.0, 1.0, 0.7), 0.5),
    ("square", "same", None, (2.0, 3.0, 0.5, 0.5, 0.8, 0.7, 0.4), 0.35),
    ("square", "fresh", 3.0, (0.2, 0.8, 0.4, 0.05, 1.0, 1.2, 0.8), 0.5),
    ("square", "fresh", 1.0, (0.05, 2.5, 0.2, 0.1, 2.5, 0.6, 0.5), 0.6),
    ("logistic", "same", None, (0.3, 1.2, 0.8, 0.3, 1.2, 2.0, 0.3), 0.5),
]


@functools.lru_cache(maxsize=None)
def _compiled(loss, data, who):
    """``(grad, jacfwd, vmapped value)`` of the error at ``(theta, rho, alpha_s)``, compiled
    once per teacher loss, data mode and objective."""

    def f(theta, rho, alpha_s):
        v = dict(zip(NAMES, theta))
        mix, t = Mixture(v["alpha"], v["delta"], rho), Teacher(loss, v["lam_t"])
        s = Student(v["gamma"], v["temperature"], v["hard_weight"], v["lam_s"], data,
                    alpha_s if data == "fresh" else None)
        res = solve_student(mix, t, s, CONFIG, throw=False)
        return res.gen_error if who == "student" else res.teacher.gen_error

    return jax.jit(jax.grad(f)), jax.jit(jax.jacfwd(f)), jax.jit(jax.vmap(f, in_axes=(0, None, None)))


FAST = [POINTS[0], POINTS[7]]  # one same-input logistic, one fresh-input square teacher


def _params(points):
    return [pytest.param(*p, marks=() if p in FAST else pytest.mark.slow) for p in points]


@pytest.mark.parametrize("loss,data,alpha_s,theta,rho", _params(POINTS))
def test_gradients_match_central_differences(loss, data, alpha_s, theta, rho):
    grad_fn, fwd_fn, batch_fn = _compiled(loss, data, "student")
    alpha_s = 1.0 if alpha_s is None else alpha_s
    theta = jnp.asarray(theta)
    grad = grad_fn(theta, rho, alpha_s)
    fwd = fwd_fn(theta, rho, alpha_s)
    h = 1e-4 * theta
    steps = jnp.concatenate([jnp.diag(h), -jnp.diag(h)])
    values = batch_fn(theta + steps, rho, alpha_s)
    fd = (values[: len(NAMES)] - values[len(NAMES):]) / (2 * h)
    scale = jnp.maximum(jnp.abs(fd), 1e-3 * jnp.max(jnp.abs(fd)))
    assert float(jnp.max(jnp.abs(grad - fd) / scale)) <= 1e-5, (grad, fd)
    np.testing.assert_allclose(fwd, grad, rtol=1e-8, atol=1e-12)


def test_teacher_error_gradient_ignores_student_parameters():
    grad_fn, _, _ = _compiled("logistic", "same", "teacher")
    g = grad_fn(jnp.asarray(POINTS[0][3]), 0.5, 1.0)
    assert float(jnp.max(jnp.abs(g[1:4]))) == 0.0 and float(jnp.max(jnp.abs(g[6]))) == 0.0
    assert abs(float(g[0])) > 0 and abs(float(g[4])) > 0
