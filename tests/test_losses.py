"""Loss objects (src/kdjax/_losses.py): proximal maps, their implicit derivatives, moments, and a
loss defined outside the package that is solved and simulated with no edit of kdjax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kdjax
from kdjax import KD, Hinge, Logistic, Loss, Mixture, Square, Teacher

OMEGA = jnp.linspace(-6.0, 6.0, 13)
LOSSES = [Logistic(), Square(), Hinge()]


@pytest.mark.parametrize("V", [1e-3, 0.7, 50.0, 1e4])
@pytest.mark.parametrize("loss", [Logistic(), Square()], ids=lambda l: l.name)
def test_prox_solves_its_defining_equation_at_any_variance(loss, V):
    for y in (1.0, -1.0):
        h = loss.prox(OMEGA, V, y)
        residual = h - OMEGA + V * loss.grad(h, y)
        assert float(jnp.max(jnp.abs(residual))) <= 1e-12 * (1 + 6.0 + V)


@pytest.mark.parametrize("V", [0.3, 2.0])
def test_hinge_prox_minimises_its_objective(V):
    """A non-smooth loss: the closed form beats every point of a fine grid."""
    grid = jnp.linspace(-10.0, 10.0, 200001)
    for y in (1.0, -1.0):
        h = Hinge().prox(OMEGA, V, y)
        obj = lambda u, o, y=y: (u - o) ** 2 / (2 * V) + Hinge().value(u, y)
        best = jax.vmap(lambda o, obj=obj: jnp.min(obj(grid, o)))(OMEGA)
        assert float(jnp.max(obj(h, OMEGA) - best)) <= 1e-9


@pytest.mark.parametrize("V", [0.5, 30.0])
def test_kd_prox_implicit_derivative_matches_finite_differences(V):
    """(1.2): derivatives of the Newton prox in omega, V and every label (tau, a, T)."""
    args = (0.7, V, 1.0, 0.8, 0.3, 2.0)  # omega, V, y, tau, a, T

    def prox(omega, V, tau, a, T):
        return KD.prox(jnp.asarray(omega), V, 1.0, tau, a, T)

    point = (args[0], args[1], args[3], args[4], args[5])
    grads = jax.grad(prox, argnums=(0, 1, 2, 3, 4))(*point)
    for i, g in enumerate(grads):
        eps = 1e-6 * max(1.0, abs(point[i]))
        up, down = list(point), list(point)
        up[i] += eps
        down[i] -= eps
        fd = (float(prox(*up)) - float(prox(*down))) / (2 * eps)
        assert abs(float(g) - fd) <= 1e-6 * (1 + abs(fd)), (i, float(g), fd)


def test_kd_loss_is_stable_for_confident_soft_labels():
    """``p = sigmoid(tau)`` at ``|tau| = 800`` is 0 or 1 in float64; the loss and its gradient stay
    finite and equal their limits (logistic in h/T times T^2)."""
    h, T = jnp.asarray(1.5), 2.0
    for tau in (800.0, -800.0):
        value, grad = KD.value(h, 1.0, tau, 0.0, T), KD.grad(h, 1.0, tau, 0.0, T)
        s = np.sign(tau)
        assert np.isfinite(float(value)) and np.isfinite(float(grad))
        np.testing.assert_allclose(float(value), T**2 * float(Logistic().value(h / T, s)), rtol=1e-12)


# (loss, tolerance): the generic rule converges exponentially for smooth channels, to first order
# where the hinge's prox slope jumps
@pytest.mark.parametrize("loss, atol", [(Logistic(), 1e-10), (Square(), 1e-10), (Hinge(), 1e-3)],
                         ids=lambda v: getattr(v, "name", ""))
def test_moments_at_128_nodes_agree_with_the_generic_quadrature_at_4096(loss, atol):
    y = jnp.asarray([[1.0], [-1.0]])
    mean, sd, V = y * 0.9 - 0.3, 1.4, 0.6
    exact = loss.moments(y, mean, sd, V, 128, 100)  # closed forms for square and hinge
    generic = Loss.moments(loss, y, mean, sd, V, 4096, 100)
    for f in ("f", "f2", "D", "loss"):
        np.testing.assert_allclose(getattr(exact, f), getattr(generic, f), atol=atol, err_msg=f)


def test_names_and_objects_are_one_loss():
    assert Teacher("hinge", 0.1).loss == Hinge() and Teacher(Hinge, 0.1).loss == Hinge()
    with pytest.raises(ValueError, match="teacher loss must be one of logistic, square, hinge"):
        Teacher("cubic", 0.1)


class SquaredHinge(Loss):
    """``max(0, 1 - y h)^2``, defined by a user: value, gradient and its closed-form prox."""

    name = "squared_hinge"
    curvature = 2.0

    def value(self, h, y):
        return jnp.maximum(0.0, 1.0 - y * h) ** 2

    def grad(self, h, y):
        return -2.0 * y * jnp.maximum(0.0, 1.0 - y * h)

    def prox(self, omega, V, y, steps: int = 100):
        return jnp.where(y * omega >= 1.0, omega, (omega + 2.0 * V * y) / (1.0 + 2.0 * V))


def test_a_loss_defined_outside_the_package_is_solved_and_simulated():
    mix, teacher = Mixture(2.0, 1.0, 0.4), Teacher(SquaredHinge(), 0.1)
    theory = kdjax.solve_teacher(mix, teacher)
    sim = kdjax.simulate_teacher(mix, teacher, n_features=400, seeds=6, n_test=2000)
    mean, sem = sim.mean(), sim.sem()
    for f in ("m", "q", "b"):
        th, mu, se = float(getattr(theory, f)), float(getattr(mean, f)), float(getattr(sem, f))
        assert abs(th - mu) <= 3 * se + 0.05 * (abs(th) + 1), (f, th, mu, se)
    # and it teaches a student on its own training inputs
    student = kdjax.solve_student(mix, teacher, kdjax.Student(0.5, 2.0, 0.2, 0.01))
    assert bool(student.converged) and 0.5 < float(student.agreement) < 1.0
    with pytest.raises(ValueError, match="squared_hinge loss has no finite minimiser"):
        kdjax.solve_teacher(mix, Teacher(SquaredHinge(), 0.0))


@pytest.mark.parametrize("loss", [Logistic(), SquaredHinge()], ids=lambda l: l.name)
def test_output_moments_derivative_is_that_of_the_quadrature_at_fixed_nodes(loss):
    """The weighted-score rule of ``output_moments`` against automatic differentiation of the same
    sums over the same nodes: first derivatives in both modes and the second derivative."""
    from kdjax._losses import _channel_moments

    y = jnp.asarray([[1.0], [-1.0]])

    def by_autodiff(p):
        mean, sd, V = p[:2, None], p[2], p[3]
        return _channel_moments(loss, loss.channel(y, mean, sd, V, 128, 100), y, V)

    def by_rule(p):
        return loss.moments(y, p[:2, None], p[2], p[3], 128, 100)

    p = jnp.asarray([0.7, -0.3, 1.3, 2.1])
    for derivative in (jax.jacfwd, jax.jacrev, lambda f: jax.hessian(lambda p: f(p).D.sum() + f(p).f.sum())):
        a, b = derivative(by_autodiff)(p), derivative(by_rule)(p)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-13 * float(jnp.max(jnp.abs(u))))
