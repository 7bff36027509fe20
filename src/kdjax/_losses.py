"""Every loss of the model, once: value, derivative in the pre-activation, proximal map.

Notation (docs/theory.md, Sec. 1): for a loss ``l(h)`` (labels and soft labels are
parameters) and a variance ``V > 0`` the proximal map is

    prox(omega) = argmin_h [ (h - omega)^2 / (2 V) + l(h) ],                 (1.1)

the root of ``h - omega + V l'(h) = 0``.  The square and hinge losses have closed forms;
the logistic loss and the KD loss are solved by a fixed number of safeguarded Newton steps
inside the bracket ``omega +- V sup|l'|`` and differentiated implicitly (``custom_jvp``),
so derivatives of any order are exact and never unroll the Newton loop.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def softplus(u):
    """``log(1 + exp(u))``, stable for every ``u``."""
    return jnp.logaddexp(0.0, u)


# --------------------------------------------------------------------------- teacher losses
def logistic(y, h):
    """``log(1 + exp(-y h))``."""
    return softplus(-y * h)


def logistic_grad(y, h):
    """``d/dh log(1 + exp(-y h)) = -y sigmoid(-y h)``; bounded by 1 in modulus."""
    return -y * jax.nn.sigmoid(-y * h)


def square(y, h):
    """``(y - h)^2 / 2``."""
    return 0.5 * (y - h) ** 2


def square_grad(y, h):
    return h - y


def hinge(y, h):
    """``max(0, 1 - y h)``."""
    return jnp.maximum(0.0, 1.0 - y * h)


def hinge_grad(y, h):
    """A subgradient: ``-y`` where ``y h < 1``, else 0."""
    return jnp.where(y * h < 1.0, -y, 0.0)


# --------------------------------------------------------------------------- the KD loss
def kd_loss(h, y, p, a, T):
    """Student loss per sample (MODEL.md): ``a log(1+e^{-y h}) + (1-a) T^2 CE(p, sigmoid(h/T))``.

    With ``CE(p, sigmoid(u)) = softplus(u) - p u``.
    """
    return a * logistic(y, h) + (1.0 - a) * T**2 * (softplus(h / T) - p * h / T)


def kd_grad(h, y, p, a, T):
    """``dL/dh = -a y sigmoid(-y h) + (1-a) T (sigmoid(h/T) - p)``, bounded by ``a + (1-a) T``."""
    return a * logistic_grad(y, h) + (1.0 - a) * T * (jax.nn.sigmoid(h / T) - p)


def soft_label(h_t, T):
    """Teacher's soft label ``p = sigmoid(h_t / T)``."""
    return jax.nn.sigmoid(h_t / T)


# --------------------------------------------------------------------------- proximal maps
def elementwise_derivative(fn, h):
    """``fn'(h)`` for an elementwise ``fn``."""
    return jax.jvp(fn, (h,), (jnp.ones_like(h),))[1]


@partial(jax.custom_jvp, nondiff_argnums=(0, 5))
def newton_prox(grad_fn, omega, V, bound, theta, steps):
    """Root of ``h - omega + V grad_fn(h, *theta) = 0`` for increasing ``grad_fn``, ``|grad_fn| <= bound``.

    Safeguarded Newton: the root lies in ``[omega - V bound, omega + V bound]``; a Newton
    step leaving the current bracket is replaced by bisection.  At most ``steps`` steps,
    stopping early once every residual is at round-off level; the derivative is implicit
    (1.2), so the loop is never differentiated.
    """
    g = lambda h: h - omega + V * grad_fn(h, *theta)
    dg = lambda h: elementwise_derivative(g, h)
    lo, hi = omega - V * bound, omega + V * bound
    # Stop once every |g| is at round-off level of the terms it balances.
    tol = 16 * jnp.finfo(jnp.result_type(omega)).eps * (1.0 + jnp.abs(omega) + V * bound)

    def body(state):
        k, h, lo, hi, dx_old, _ = state
        gh, dgh = g(h), dg(h)
        lo = jnp.where(gh < 0.0, h, lo)
        hi = jnp.where(gh > 0.0, h, hi)
        newton = h - gh / dgh
        # Bisect when Newton leaves the bracket or does not at least halve the last step
        # (Newton on a sigmoid at large V otherwise cycles inside the bracket).
        slow = jnp.abs(2.0 * gh) > jnp.abs(dx_old * dgh)
        bisect = (newton <= lo) | (newton >= hi) | slow
        new = jnp.where(bisect, 0.5 * (lo + hi), newton)
        new = jnp.where(jnp.abs(gh) <= tol, h, new)  # a converged node stays put
        return k + 1, new, lo, hi, new - h, jnp.max(jnp.abs(gh) / tol)

    def cond(state):
        return (state[0] < steps) & (state[-1] > 1.0)

    h0 = jnp.clip(omega - V * grad_fn(omega, *theta), lo, hi)
    state = (0, h0, lo, hi, hi - lo, jnp.asarray(jnp.inf, h0.dtype))
    return jax.lax.while_loop(cond, body, state)[1]


@newton_prox.defjvp
def _newton_prox_jvp(grad_fn, steps, primals, tangents):
    # Implicit function theorem on g(h) = h - omega + V l'(h; theta) = 0:          (1.2)
    # dh = [d omega - l'(h) dV - V d_theta l'(h) . d theta] / (1 + V l''(h)).
    omega, V, bound, theta = primals
    d_omega, d_V, _, d_theta = tangents
    h = newton_prox(grad_fn, omega, V, bound, theta, steps)
    lp, d_lp_theta = jax.jvp(lambda th: grad_fn(h, *th), (theta,), (d_theta,))
    lpp = elementwise_derivative(lambda hh: grad_fn(hh, *theta), h)
    dh = (d_omega - lp * d_V - V * d_lp_theta) / (1.0 + V * lpp)
    return h, dh


def _logistic_grad_h(h, y):
    return logistic_grad(y, h)


def prox_teacher(loss: str, y, omega, V, steps: int):
    """Proximal map (1.1) of the teacher's loss with label ``y``."""
    if loss == "square":
        return (omega + V * y) / (1.0 + V)
    if loss == "hinge":
        u = y * omega  # closed form by pieces of the margin u = y omega
        return jnp.where(u >= 1.0, omega, jnp.where(u >= 1.0 - V, y, omega + V * y))
    if loss == "logistic":
        return newton_prox(_logistic_grad_h, omega, V, jnp.ones_like(omega), (y,), steps)
    raise ValueError(f"teacher loss must be one of logistic, square, hinge; got {loss!r}")


def teacher_loss(loss: str):
    """``(value, grad)`` of the teacher's loss as functions of ``(y, h)``."""
    return {
        "logistic": (logistic, logistic_grad),
        "square": (square, square_grad),
        "hinge": (hinge, hinge_grad),
    }[loss]


def _kd_grad_h(h, y, p, a, T):
    return kd_grad(h, y, p, a, T)


def prox_kd(y, p, a, T, omega, V, steps: int):
    """Proximal map (1.1) of the KD loss with hard label ``y`` and soft label ``p``."""
    bound = a + (1.0 - a) * T
    return newton_prox(_kd_grad_h, omega, V, bound, (y, p, a, T), steps)
