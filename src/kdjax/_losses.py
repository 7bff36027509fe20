"""Every loss of the model, once, as an object (docs/theory.md, Sec. 1).

A loss is a frozen, field-less class (hashable: it is static configuration under ``jit``) whose
methods take the pre-activation ``h`` first and then its labels: ``(y,)`` for the teacher's
losses, ``(y, tau, a, T)`` for the KD loss.  From ``value`` and ``grad`` a loss gets everything
the theory, the simulator and the regime checks need:

* ``hess``: ``d^2 l / dh^2`` (default: forward-mode derivative of ``grad``);
* ``prox(omega, V, *labels)``: the proximal map (1.1)
  ``argmin_h [(h - omega)^2 / (2 V) + l(h)]``, the root of ``h - omega + V l'(h) = 0``
  (default: safeguarded Newton in the bracket ``omega +- V bound`` with the implicit
  derivative (1.2); closed forms override it);
* ``channel(y, mean, sd, V, n, steps)``: quadrature nodes over the cavity field
  ``omega ~ N(mean, sd^2)`` and its output ``h = prox(omega)`` (Sec. 1.3);
* ``moments(y, mean, sd, V, config)``: the Gaussian averages ``E[f], E[f^2], E[D], E[loss]``
  (closed forms where they exist; over ``"output"`` nodes ``output_moments``, summed by chunks of
  the nodes that ``output_rule`` places and ``output_nodes`` evaluates);
* ``recedes(h, *labels)``: whether the loss falls to its infimum along ``h -> c h, c -> inf``
  (the direction in which a separable problem with no ridge has no finite minimiser);
* ``zero_ridge``: what a unique finite minimiser needs without a ridge, ``"non_separable"``
  data (the loss vanishes at infinity on the right side) or ``"overdetermined"`` systems
  (``alpha > 1``: strictly convex, coercive losses such as the square loss).

A new loss is one subclass: ``value``, ``grad`` and ``bound`` (``sup |l'|``) suffice.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._quadrature import normal_cdf, normal_pdf, sinh_nodes, sinh_rule


def softplus(u):
    """``log(1 + exp(u))``, stable for every ``u``."""
    return jnp.logaddexp(0.0, u)


def elementwise_derivative(fn, h):
    """``fn'(h)`` for an elementwise ``fn``."""
    return jax.jvp(fn, (h,), (jnp.ones_like(h),))[1]


@partial(jax.custom_jvp, nondiff_argnums=(0, 5))
def newton_prox(grad_fn, omega, V, bound, theta, steps):
    """Root of ``h - omega + V grad_fn(h, *theta) = 0`` for increasing ``grad_fn``, ``|grad_fn| <= bound``.

    Safeguarded Newton: the root lies in ``[omega - V bound, omega + V bound]``; a Newton
    step leaving the current bracket, or not at least halving the last step, is replaced by
    bisection.  At most ``steps`` steps, stopping early once every residual is at round-off
    level; the derivative is implicit (1.2), so the loop is never differentiated.
    """
    g = lambda h: h - omega + V * grad_fn(h, *theta)
    dg = lambda h: elementwise_derivative(g, h)
    lo, hi = omega - V * bound, omega + V * bound
    tol = 16 * jnp.finfo(jnp.result_type(omega)).eps * (1.0 + jnp.abs(omega) + V * bound)

    def body(state):
        k, h, lo, hi, dx_old, _ = state
        gh, dgh = g(h), dg(h)
        lo = jnp.where(gh < 0.0, h, lo)
        hi = jnp.where(gh > 0.0, h, hi)
        newton = h - gh / dgh
        # Newton on a sigmoid at large V otherwise cycles inside the bracket.
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


class Moments(eqx.Module):
    """Gaussian averages of a channel, per class: ``E[f], E[f^2], E[D], E[loss]``.

    ``f = (h - omega) / V`` and ``D = -df/d omega = (1 - dh/d omega) / V`` at ``h = prox(omega)``.
    """

    f: jax.Array
    f2: jax.Array
    D: jax.Array
    loss: jax.Array


class ChannelNodes(eqx.Module):
    """Quadrature over a cavity field ``omega ~ N(mean, sd^2)`` and its output ``h = prox(omega)``.

    ``E g(omega, h) ~= sum w g(omega, h)``; ``slope = dh/d omega``.  Arrays ``(classes, n)``.
    """

    omega: jax.Array
    h: jax.Array
    slope: jax.Array
    w: jax.Array


def field_nodes(mean, sd, n: int):
    """Nodes ``omega`` and weights over ``omega ~ N(mean, sd^2)``, refined where ``omega`` crosses 0."""
    xi, w = sinh_rule(-mean[..., 0] / sd, 1.0 / (1.0 + sd), n)
    return mean + sd * xi, w


@dataclasses.dataclass(frozen=True)
class Loss:
    """A per-sample loss ``l(h; labels)`` (see the module docstring for what it provides).

    Subclasses define ``value`` and ``grad`` and the class attributes below.

    bound: ``sup_h |l'(h)|`` (``None``: unbounded; the subclass then defines ``prox``);
    curvature: ``sup_h l''(h)`` (sets the resolution of the output quadrature);
    nodes: ``"output"`` places the channel's nodes in ``h`` (``omega = h + V l'(h)`` is
    explicit), which follows a smooth loss on its own scale whatever ``V``; ``"field"`` places
    them in ``omega`` (for piecewise-linear proximal maps);
    zero_ridge: ``"non_separable"`` or ``"overdetermined"`` (module docstring);
    minimiser: the simulator's algorithm, ``"newton"`` (needs ``hess``) or ``"interior_point"``;
    piecewise_linear: ``l'' = 0`` on whole intervals (the bias equation's slope can vanish).
    """

    name: ClassVar[str] = "loss"
    bound: ClassVar[float | None] = None
    curvature: ClassVar[float] = 1.0
    nodes: ClassVar[str] = "output"
    zero_ridge: ClassVar[str] = "non_separable"
    minimiser: ClassVar[str] = "newton"
    piecewise_linear: ClassVar[bool] = False

    def value(self, h, y):
        raise NotImplementedError

    def grad(self, h, y):
        raise NotImplementedError

    def hess(self, h, *labels):
        """``l''(h)`` by forward-mode differentiation of ``grad``."""
        return elementwise_derivative(lambda u: self.grad(u, *labels), h)

    def prox_bound(self, *labels):
        """``sup |l'|`` for these labels (brackets the proximal map)."""
        return self.bound

    def prox(self, omega, V, *labels, steps: int = 100):
        """Proximal map (1.1) by safeguarded Newton with the implicit derivative (1.2)."""
        bound = jnp.broadcast_to(jnp.asarray(self.prox_bound(*labels), omega.dtype), omega.shape)
        return newton_prox(self.grad, omega, V, bound, labels, steps)

    def recedes(self, h, y):
        """Per sample: ``l`` falls to its infimum along ``h -> c h`` (``y h > 0`` for a margin loss)."""
        if self.zero_ridge == "non_separable":
            return y * h > 0
        return jnp.zeros(jnp.shape(h), bool)

    def channel(self, y, mean, sd, V, n: int, steps: int) -> ChannelNodes:
        """Nodes of the channel ``omega ~ N(mean, sd^2) -> h = prox(omega)`` (Sec. 1.3).

        ``"output"`` nodes: ``E g = int g(omega(h), h) N(omega(h); mean, sd^2) omega'(h) dh``
        by a sinh rule centred at ``h = 0`` over the ``h``-image of ``mean +- 10 sd``; no
        proximal map is solved at the nodes.  ``"field"`` nodes: a sinh rule in ``omega``
        refined where ``omega`` crosses 0.  No derivative flows through node placement.
        """
        if self.nodes == "field":
            omega, w = field_nodes(mean, sd, n)
            h, slope = jax.jvp(lambda o: self.prox(o, V, y, steps=steps), (omega,), (jnp.ones_like(omega),))
            return ChannelNodes(omega=omega, h=h, slope=slope, w=w)
        return self.output_nodes(y, mean, sd, V, self.output_rule(y, mean, sd, V, steps), n)

    def output_rule(self, y, mean, sd, V, steps: int) -> tuple:
        """``"output"`` nodes' sinh rule over ``h``: ``(lo, hi, centre, width)`` (no derivative)."""
        ends = jax.lax.stop_gradient(mean + sd * jnp.asarray([-10.0, 10.0], mean.dtype))
        lo, hi = self.prox(ends, V, y, steps=steps).T  # (one Newton loop for both ends)
        scale = jnp.minimum(1.0, sd / (1.0 + V * self.curvature))
        return jax.lax.stop_gradient((lo, hi, jnp.clip(0.0, lo, hi), scale))

    def output_nodes(self, y, mean, sd, V, rule: tuple, n: int, index=None) -> ChannelNodes:
        """The nodes ``index`` (default: all ``n``) of ``output_rule``'s rule, with their channel."""
        h, dh = jax.lax.stop_gradient(sinh_nodes(*rule, n, index))
        jac = 1.0 + V * self.hess(h, y)
        omega = h + V * self.grad(h, y)
        w = dh * jac * normal_pdf((omega - mean) / sd) / sd
        return ChannelNodes(omega=omega, h=h, slope=1.0 / jac, w=w)

    def moments(self, y, mean, sd, V, degree: int, steps: int) -> Moments:
        """Moments of the channel by quadrature over ``channel`` nodes (``"output"`` nodes: with the
        derivative of ``output_moments``)."""
        if self.nodes == "output":
            return output_moments(self, y, mean, sd, V, degree, steps)
        return _channel_moments(self, self.channel(y, mean, sd, V, degree, steps), y, V)


def _node_values(loss, nodes: ChannelNodes, y, V) -> tuple:
    """``f, f^2, D, loss`` at each node (the order of ``Moments``'s fields)."""
    f = (nodes.h - nodes.omega) / V
    return f, f**2, (1.0 - nodes.slope) / V, loss.value(nodes.h, y)


def _node_sums(w, *values) -> tuple:
    """``sum_k w_k g_k`` over the last (node) axis for each ``g``: one variadic reduction, so that XLA
    computes every integrand and its sum in one kernel, with no array over the nodes in memory."""
    shape = jnp.broadcast_shapes(jnp.shape(w), *(jnp.shape(g) for g in values))
    terms = tuple(jnp.broadcast_to(w * g, shape) for g in values)
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    return jax.lax.reduce(terms, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b, strict=True)),
                          (len(shape) - 1,))


_SMALL_BUFFER_BYTES = 512  # XLA's CPU runtime runs a loop body's kernels in order on one thread (no
# hand-offs between threads) when no buffer of the body exceeds this


def _output_sums(loss, y, mean, sd, V, n: int, steps: int, integrands) -> tuple:
    """``_node_sums`` of ``integrands(nodes)`` over the ``n`` ``"output"`` nodes, a chunk of nodes per
    iteration of a loop: each chunk's arrays stay within ``_SMALL_BUFFER_BYTES``, so the solver's
    loop body, and this loop's, run on one thread.  The sums are those over all nodes at once."""
    rule = loss.output_rule(y, mean, sd, V, steps)
    rows = jnp.broadcast_shapes(jnp.shape(mean)[:-1], jnp.shape(y)[:-1], jnp.shape(rule[0]))
    dtype = jnp.result_type(mean, sd, V)
    chunk = max(8, min(n, _SMALL_BUFFER_BYTES // (max(1, math.prod(rows)) * jnp.dtype(dtype).itemsize)))

    def sums(c):  # (stacked: the running total is one array, updated by one kernel)
        k = c * chunk + jnp.arange(chunk)
        nodes = loss.output_nodes(y, mean, sd, V, rule, n, jnp.minimum(k, n - 1))
        return jnp.stack(_node_sums(jnp.where(k < n, nodes.w, 0.0), *integrands(nodes)))  # (past the end: 0)

    total = jax.eval_shape(sums, 0)
    zeros = jnp.zeros(total.shape, total.dtype)
    return tuple(jax.lax.fori_loop(0, -(-n // chunk), lambda c, total: total + sums(c), zeros))


def _channel_moments(loss, nodes: ChannelNodes, y, V) -> Moments:
    """``Moments`` as sums over the nodes."""
    return Moments(*_node_sums(nodes.w, *_node_values(loss, nodes, y, V)))


def _rows(t):
    """A parameter's value per row: ``mean, sd, V`` are scalars or columns ``(rows, 1)``."""
    return t[..., 0] if jnp.ndim(t) else t


@partial(jax.custom_jvp, nondiff_argnums=(0, 5, 6))
def output_moments(loss, y, mean, sd, V, n: int, steps: int) -> Moments:
    """``Loss.moments`` over ``"output"`` nodes (Sec. 1.3), differentiated at fixed nodes ``h`` (1.4).

    Only the weights ``w = dh (1 + V l'') phi(z) / sd``, ``z = (omega - mean) / sd``,
    ``omega = h + V l'(h)``, and the node value ``D = l'' / (1 + V l'')`` depend on ``(mean, sd, V)``:
    ``d log w = (z / sd) d mean + ((z^2 - 1) / sd) d sd + (D - z l' / sd) dV`` and ``dD = -D^2 dV``.
    So a moment's tangent is three weighted sums per row times the parameters' tangents: the
    Jacobian of the map costs one pass over the nodes, not one per direction.
    """
    return Moments(*_output_sums(loss, y, mean, sd, V, n, steps, lambda nodes: _node_values(loss, nodes, y, V)))


@output_moments.defjvp
def _output_moments_jvp(loss, n, steps, primals, tangents):
    y, mean, sd, V = primals
    _, d_mean, d_sd, d_V = tangents

    def integrands(nodes):
        g = _node_values(loss, nodes, y, V)
        z = (nodes.omega - mean) / sd
        D = loss.hess(nodes.h, y) * nodes.slope
        scores = (z / sd, (z**2 - 1.0) / sd, D + z * g[0] / sd)  # d log w / d(mean, sd, V); l' = -f
        return *g, *(gi * s for gi in g for s in scores), D**2

    sums = _output_sums(loss, y, mean, sd, V, n, steps, integrands)
    d_rows = [_rows(t) for t in (d_mean, d_sd, d_V)]
    tangent = [sum(sums[4 + 3 * i + j] * dt for j, dt in enumerate(d_rows)) for i in range(4)]
    tangent[2] = tangent[2] - sums[16] * d_rows[2]  # dD = -D^2 dV at each node
    return Moments(*sums[:4]), Moments(*tangent)


def _small_sigmoid(h):
    """``sigmoid(-|h|)``, the smaller of ``sigmoid(h)`` and ``sigmoid(-h)``."""
    return jax.nn.sigmoid(-jnp.abs(h))


@dataclasses.dataclass(frozen=True)
class Logistic(Loss):
    """``log(1 + exp(-y h))``; ``|l'| <= 1``, ``l'' <= 1/4``."""

    name: ClassVar[str] = "logistic"
    bound: ClassVar[float] = 1.0
    curvature: ClassVar[float] = 0.25

    def value(self, h, y):
        return softplus(-y * h)

    # both from s = sigmoid(-|h|) <= 1/2 (one exponential per node, shared by the two; 1 - s is exact)
    def grad(self, h, y):
        s = _small_sigmoid(h)
        return -y * jnp.where(y * h > 0, s, 1.0 - s)

    def hess(self, h, y):
        s = _small_sigmoid(h)
        return s * (1.0 - s)


@dataclasses.dataclass(frozen=True)
class Square(Loss):
    """``(y - h)^2 / 2``: prox ``(omega + V y) / (1 + V)`` and Gaussian moments in closed form."""

    name: ClassVar[str] = "square"
    nodes: ClassVar[str] = "field"
    zero_ridge: ClassVar[str] = "overdetermined"

    def value(self, h, y):
        return 0.5 * (y - h) ** 2

    def grad(self, h, y):
        return h - y

    def hess(self, h, y):
        return jnp.ones_like(h)

    def prox(self, omega, V, y, steps: int = 100):
        return (omega + V * y) / (1.0 + V)

    def moments(self, y, mean, sd, V, degree: int, steps: int) -> Moments:
        """``f = (y - omega) / (1 + V)`` is Gaussian: exact moments."""
        k = 1.0 + V
        mu = (y - mean)[:, 0] / k
        var = (sd / k) ** 2
        return Moments(f=mu, f2=mu**2 + var, D=jnp.broadcast_to(1.0 / k, mu.shape), loss=0.5 * (mu**2 + var))


def lower_tail(t):
    """``E[(t - xi)^k ; xi < t]`` for ``k = 0, 1, 2``, ``xi ~ N(0, 1)``."""
    Phi, phi = normal_cdf(t), normal_pdf(t)
    return Phi, t * Phi + phi, (1.0 + t**2) * Phi + t * phi


@dataclasses.dataclass(frozen=True)
class Hinge(Loss):
    """``max(0, 1 - y h)``: prox by pieces of the margin, moments in closed form."""

    name: ClassVar[str] = "hinge"
    bound: ClassVar[float] = 1.0
    nodes: ClassVar[str] = "field"
    minimiser: ClassVar[str] = "interior_point"
    piecewise_linear: ClassVar[bool] = True

    def value(self, h, y):
        return jnp.maximum(0.0, 1.0 - y * h)

    def grad(self, h, y):
        """A subgradient: ``-y`` where ``y h < 1``, else 0."""
        return jnp.where(y * h < 1.0, -y, 0.0)

    def hess(self, h, y):
        return jnp.zeros_like(h)

    def prox(self, omega, V, y, steps: int = 100):
        u = y * omega
        return jnp.where(u >= 1.0, omega, jnp.where(u >= 1.0 - V, y, omega + V * y))

    def moments(self, y, mean, sd, V, degree: int, steps: int) -> Moments:
        """With the margin ``u = y omega ~ N(y mean, sd^2)``: ``f = 0`` for ``u >= 1``;
        ``f = y (1 - u) / V``, ``D = 1/V`` for ``1 - V <= u < 1``; ``f = y`` and loss
        ``1 - V - u`` for ``u < 1 - V``; each piece integrated in closed form."""
        mu = y * mean
        P1, G1, H1 = lower_tail((1.0 - mu) / sd)  # u < 1
        P3, G3, H3 = lower_tail((1.0 - V - mu) / sd)  # u < 1 - V
        one_minus_u = sd * G1 - (V * P3 + sd * G3)  # E[(1-u); 1-V <= u < 1]
        one_minus_u2 = sd**2 * H1 - (V**2 * P3 + 2 * V * sd * G3 + sd**2 * H3)
        yf = one_minus_u / V + P3
        return Moments(f=(y * yf)[:, 0], f2=(one_minus_u2 / V**2 + P3)[:, 0], D=((P1 - P3) / V)[:, 0],
                       loss=(sd * G3)[:, 0])


LOGISTIC, SQUARE, HINGE = Logistic(), Square(), Hinge()
TEACHER_LOSSES = {loss.name: loss for loss in (LOGISTIC, SQUARE, HINGE)}


def as_loss(loss) -> Loss:
    """A ``Loss`` instance from itself or from one of the names ``logistic, square, hinge``."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss in TEACHER_LOSSES:
        return TEACHER_LOSSES[loss]
    shown = loss if isinstance(loss, str) else type(loss).__name__
    raise ValueError(f"teacher loss must be one of {', '.join(TEACHER_LOSSES)} or a kdjax.Loss; got {shown!r}")


@dataclasses.dataclass(frozen=True)
class KDLoss(Loss):
    """The student's loss (docs/model.md): ``a log(1 + e^{-y h}) + (1 - a) T^2 CE(p, sigmoid(h / T))``.

    Labels ``(y, tau, a, T)`` with the soft label ``p = sigmoid(tau)``, ``tau = h_t / T``.  The
    cross-entropy is written with ``s = sign(tau)`` and the minority probability
    ``pi = sigmoid(-|tau|)``, so that ``p`` never rounds to 0 or 1:
    ``CE(p, sigmoid(v)) = softplus(v) - p v = softplus(-s v) + s pi v``.  ``|l'| <= a + (1 - a) T``.
    """

    name: ClassVar[str] = "kd"

    def value(self, h, y, tau, a, T):
        s, pi = jnp.where(tau >= 0, 1.0, -1.0), jax.nn.sigmoid(-jnp.abs(tau))
        v = h / T
        return a * LOGISTIC.value(h, y) + (1.0 - a) * T**2 * (softplus(-s * v) + s * pi * v)

    def grad(self, h, y, tau, a, T):
        """``-a y sigmoid(-y h) + (1 - a) T (sigmoid(h / T) - p)``."""
        s, pi = jnp.where(tau >= 0, 1.0, -1.0), jax.nn.sigmoid(-jnp.abs(tau))
        return a * LOGISTIC.grad(h, y) + (1.0 - a) * T * s * (pi - jax.nn.sigmoid(-s * h / T))

    def hess(self, h, y, tau, a, T):
        v = h / T
        return a * LOGISTIC.hess(h, y) + (1.0 - a) * jax.nn.sigmoid(v) * jax.nn.sigmoid(-v)

    def prox_bound(self, y, tau, a, T):
        return a + (1.0 - a) * T

    def recedes(self, h, y, tau, a, T):
        """The zero-slope side of the loss along ``h -> c h``: only a hard label (``a = 1``) has one
        when ``0 < p < 1``."""
        s, pi = jnp.where(tau >= 0, 1.0, -1.0), jax.nn.sigmoid(-jnp.abs(tau))
        slope_plus = a * (y < 0) + (1 - a) * jnp.where(s > 0, pi, 1 - pi)
        slope_minus = a * (y > 0) + (1 - a) * jnp.where(s > 0, 1 - pi, pi)
        return ((h > 0) & (slope_plus == 0)) | ((h < 0) & (slope_minus == 0))


KD = KDLoss()
