"""Generation ``k >= 1``: a student distilled from generation ``k - 1`` (docs/theory.md, Sec. 3).

The predecessor ``p`` enters through its ``Summary`` ``(m_p, q_p, b_p, V_p, gamma_p)`` and, on its
own training inputs, through its training output.  The state is
``StudentState(m, sigma2, r, b, V, V_st)`` with ``sigma2 = q - r^2 / q_p >= 0``, the variance of the
student's field not explained by its predecessor's (3.4'): a sum of squares, so a student that
copies its predecessor (``sigma2 = 0``) is found by Newton's method.  On a training sample of
true class ``y`` the two cavity fields are jointly Gaussian (3.1),

    omega_p = y m_p + b_p + sqrt(delta) u_p,   omega = y m + b + sqrt(delta) u,
    (u_p, u) ~ N(0, [[q_p, r], [r, q]]).

The input mode (``kdjax._inputs``) gives the predecessor's output ``h_p`` and
``f_p = (h_p - omega_p) / V_p``: on the same inputs ``h_p = prox_p(omega_p)`` and the student's
field is shifted by the predecessor's response, ``omega' = omega + V_st f_p`` (3.2); on fresh
inputs ``h_p = omega_p``, ``f_p = 0``.  Then

    h = prox_{V L(., y~, h_p / T, a, T)}(omega'),  f = (h - omega') / V,
    D_ss = -df/d omega,  D_st = -df/d omega_p,

the conjugates (3.3) ``m_hat = alpha E[y f]``, ``Q_ss = alpha delta E[f^2]``,
``Q_ts = alpha delta E[f_p f]``, ``V_hat_ss = alpha delta E[D_ss]``,
``V_hat_st = alpha delta E[D_st]`` (``alpha`` of the input mode), and the weights (3.4) with
``c = 1 / (lam + V_hat_ss)``, ``A_p = V_p / delta`` and the predecessor's per-coordinate moments
``m_p / gamma_p``, ``q_p / gamma_p`` on the ``gamma`` coordinates the student sees (3.7).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._losses import KD as KD_LOSS
from .._observables import gen_error_unchecked
from .._params import Student
from .._quadrature import (
    bisect_root,
    gauss_hermite,
    gauss_legendre,
    label_rows,
    normal_cdf,
    normal_pdf,
    row_average,
    safe_sqrt,
)
from .._regimes import check_student, has_finite_minimiser
from .base import Generation, Summary
from .erm import ERM
from .records import Record, record_of, update


def soft_labels(y, h_p, temperature, hard_weight):
    """The KD loss's labels ``(y~, tau = h_p / T, a, T)`` from the teacher's output ``h_p``."""
    return y, h_p / temperature, hard_weight, temperature


def output_partials(omega, h_p, V, y, temperature, hard_weight, config):
    """A distilled generation's training output ``h = prox_{V L}(omega)`` with its partial derivatives in
    ``omega`` and in its teacher's output ``h_p`` (KD loss with labels ``(y~, h_p / T, a, T)``): from
    ``h - omega + V L'(h; h_p) = 0`` (1.2), ``dh/d omega = 1 / (1 + V L'')`` and
    ``dh/d h_p = -V (d L'/d h_p) / (1 + V L'')``."""
    labels = lambda hp: soft_labels(y, hp, temperature, hard_weight)
    h = KD_LOSS.prox(omega, V, *labels(h_p), steps=config.newton_steps)
    slope = 1.0 / (1.0 + V * KD_LOSS.hess(h, *labels(h_p)))
    dgrad_dhp = jax.jvp(lambda hp: KD_LOSS.grad(h, *labels(hp)), (h_p,), (jnp.ones_like(h_p),))[1]
    return h, slope, -V * dgrad_dhp * slope


class StudentState(eqx.Module):
    """Order parameters of a student's fixed point (3.4): ``m``, ``sigma2 = q - r^2 / q_p``, the
    overlap ``r`` with its predecessor, the bias ``b``, the response ``V`` (``V_ss``) and the cross
    response ``V_st``."""

    m: jax.Array
    sigma2: jax.Array
    r: jax.Array
    b: jax.Array
    V: jax.Array
    V_st: jax.Array

    def q(self, predecessor: Summary):
        """``q = r^2 / q_p + sigma2``."""
        return self.r**2 / predecessor.q + self.sigma2


class _Nodes:
    """Cavity fields of both generations at the 2-D quadrature nodes (3.1), docs/theory.md Sec. 1.3.

    ``u_p = sqrt(q_p) xi_1`` and ``u = slope xi_1 + cond_sd xi_2``.  The predecessor's field uses
    the nodes of the input mode (same inputs: its training output ``h_p`` and ``dh_p/d omega_p``
    come with them); ``xi_2`` (the student's own noise, exactly 0 when it copies its predecessor)
    uses Gauss-Hermite.  Arrays ``(rows, K * K)``, one row per (true, observed) label pair.
    """

    def __init__(self, gen, x: StudentState, p, mixture, config):
        K = config.degree_2d
        s = p.summary
        y, y_obs, weight = label_rows(mixture)
        self.y, self.y_obs, self.weight = y, y_obs, weight
        R = y.shape[0]
        sd = jnp.sqrt(mixture.delta)
        self.slope = x.r / safe_sqrt(s.q)
        self.cond_sd = safe_sqrt(x.sigma2)
        self.mean = y * x.m + x.b
        self.mean_p, self.sd_p = y * s.m + s.b, sd * safe_sqrt(s.q)
        omega_p, h_p, dh_p, w1 = gen.inputs.predecessor_nodes(p.generation, p.state, y_obs, self.mean_p,
                                                               self.sd_p, K, config)
        xi1 = (omega_p - self.mean_p) / self.sd_p
        mean2 = self.mean + sd * self.slope * xi1  # (R, K): the student's field given xi1
        xi2, w2 = gauss_hermite(K, y.dtype)
        self.w = (w1[:, :, None] * w2).reshape(R, K * K)
        tile = lambda a: jnp.broadcast_to(a[:, :, None], (R, K, K)).reshape(R, K * K)
        self.omega_p, self.h_p, self.dh_p = tile(omega_p), tile(h_p), tile(dh_p)
        self.omega = (mean2[:, :, None] + sd * self.cond_sd * xi2).reshape(R, K * K)
        self.f_p = (self.h_p - self.omega_p) / s.V if gen.inputs.responds else jnp.zeros_like(self.h_p)

    def average(self, g):
        return row_average(self.weight, jnp.sum(self.w * g, axis=-1))


class KD(Generation):
    """A distilled generation: ``params`` is its ``kdjax.Student`` (``gamma, T, a, lam``, inputs)."""

    params: Student

    @property
    def inputs(self):
        return self.params.inputs

    def needs(self, history: tuple) -> tuple:
        """Its predecessor only (the one-predecessor equations of this module)."""
        return history[-1:]

    def _labels(self, y, h_p):
        """The KD loss's labels ``(y~, tau = h_p / T, a, T)``."""
        return soft_labels(y, h_p, self.params.temperature, self.params.hard_weight)

    def _output(self, h_p, f_p, omega, y, x: StudentState, config):
        """``f`` and ``h`` given the predecessor's output ``h_p``, its ``f_p`` and the cavity ``omega``."""
        shifted = omega + x.V_st * f_p
        h = KD_LOSS.prox(shifted, x.V, *self._labels(y, h_p), steps=config.newton_steps)
        return (h - shifted) / x.V, h

    def start(self, mixture, history):
        """The predecessor restricted to the student's coordinates (``q = r = g q_p``, ``g = gamma / gamma_p``)."""
        s = history[-1].summary
        g = self.params.gamma / s.gamma
        V_st = g * s.V if self.inputs.responds else 0.0 * s.V
        return StudentState(m=g * s.m, sigma2=g * (1.0 - g) * s.q, r=g * s.q, b=s.b, V=g * s.V, V_st=V_st)

    def output_partials(self, omega, h_p, V, y, config):
        """``output_partials`` with this generation's temperature and hard-label weight."""
        return output_partials(omega, h_p, V, y, self.params.temperature, self.params.hard_weight, config)

    def _conjugates(self, x: StudentState, mixture, history, config) -> dict:
        """The conjugates (3.3) at ``x``, and ``E[f]``, ``E[D_ss]`` for the bias step."""
        s = history[-1].summary
        nodes = _Nodes(self, x, history[-1], mixture, config)
        f_p = nodes.f_p
        f, f_lin = jax.linearize(
            lambda h, fp, o: self._output(h, fp, o, nodes.y_obs, x, config)[0], nodes.h_p, f_p, nodes.omega
        )
        zeros = jnp.zeros_like(f)
        D_ss = -f_lin(zeros, zeros, jnp.ones_like(f))
        # d/d omega_p moves h_p by dh_p/d omega_p and f_p by (dh_p/d omega_p - 1) / V_p
        df_p = (nodes.dh_p - 1.0) / s.V if self.inputs.responds else zeros
        D_st = -f_lin(nodes.dh_p, df_p, zeros)
        mean = nodes.average
        alpha, delta = self.inputs.alpha(mixture), mixture.delta
        return dict(m_hat=alpha * mean(nodes.y * f), Q_ss=alpha * delta * mean(f**2),
                    Q_ts=alpha * delta * mean(f_p * f), Vh_ss=alpha * delta * mean(D_ss),
                    Vh_st=alpha * delta * mean(D_st), Ef=mean(f), ED=mean(D_ss))

    def map(self, x: StudentState, mixture, history, config) -> StudentState:
        """One application of the student's saddle-point map (3.2)-(3.5), (3.7)."""
        s = history[-1].summary
        h = self._conjugates(x, mixture, history, config)
        m_hat, Vh_st = h["m_hat"], h["Vh_st"]
        delta, gamma = mixture.delta, self.params.gamma
        c = 1.0 / (self.params.lam + h["Vh_ss"])
        A_p = s.V / delta
        m_p, q_p = s.m / s.gamma, s.q / s.gamma  # per coordinate of the predecessor    (3.7)
        # per coordinate w = c (Y - V_hat_st w_p) with Y = m_hat v + xi (3.4)
        B = m_hat * m_p + A_p * h["Q_ts"]  # E[w_p Y]
        C = m_hat**2 + h["Q_ss"]  # E[Y^2]
        # sigma2 = q - r^2/q_p as a sum of two non-negative terms, free of cancellation: a
        # student that copies its predecessor has Y = 0 and sigma2 = 0 exactly.          (3.4')
        g = gamma / s.gamma
        sigma2 = gamma * c**2 * ((1.0 - g) * (Vh_st * q_p - B) ** 2 / q_p + (C - B**2 / q_p))
        V_st = -delta * gamma * c * Vh_st * A_p if self.inputs.responds else jnp.zeros_like(c)
        return StudentState(
            m=gamma * c * (m_hat - Vh_st * m_p), sigma2=sigma2, r=gamma * c * (B - Vh_st * q_p),
            b=x.b + h["Ef"] / h["ED"], V=delta * gamma * c, V_st=V_st,
        )

    def record(self, x: StudentState, mixture, history, records, config) -> Record:
        """Its chain ``Record`` (docs/chains.md): the conjugates in the chain's layout, then (C.5)-(C.10).

        On the same inputs (generation 1) ``V_hat = (V_hat_st, V_hat_ss)``, ``Xi = (Q_ts, Q_ss)``; on fresh
        inputs only the pair ``(k - 1, k)`` of ``V_hat`` and the diagonal of ``Xi`` are not zero (C.13)."""
        k = len(records)
        h = self.solved_conjugates(x, mixture, history)
        zeros = jnp.zeros((k + 1,), h["m_hat"].dtype)
        V_hat = zeros.at[k].set(h["Vh_ss"]).at[k - 1].set(h["Vh_st"])
        Xi_row = zeros.at[k].set(h["Q_ss"])
        if self.inputs.responds:
            Xi_row = Xi_row.at[k - 1].set(h["Q_ts"])
        st = self.params
        w = update(records, st.gamma, st.lam, mixture.delta, h["m_hat"], V_hat, Xi_row)
        return record_of(w, x.b, st.gamma, Xi_row)

    def solved_conjugates(self, x: StudentState, mixture, history) -> dict:
        """The conjugates at a fixed point, from the state alone: (3.4) and (3.4') solved for them.

        ``c = V / (delta gamma)`` gives ``V_hat_ss``; on the same inputs ``V_st`` gives ``V_hat_st``, and
        ``m``, ``r`` give ``m_hat`` and ``Q_ts``; on fresh inputs (``Q_ts = 0``) ``m`` and ``r`` are two
        linear equations in ``m_hat`` and ``V_hat_st`` (determinant ``m_p^2 - q_p``, per coordinate,
        negative: the predecessor's weights carry noise besides ``v``); ``sigma2`` gives ``Q_ss``.  No
        Gaussian average, so a later generation's need for this generation's record costs no node."""
        s = history[-1].summary
        delta, gamma = mixture.delta, self.params.gamma
        c = x.V / (delta * gamma)
        m_p, q_p = s.m / s.gamma, s.q / s.gamma
        A_p = s.V / delta
        if self.inputs.responds:
            Vh_st = -x.V_st / (delta * gamma * c * A_p)
            m_hat = x.m / (gamma * c) + Vh_st * m_p
            B = x.r / (gamma * c) + Vh_st * q_p
            Q_ts = (B - m_hat * m_p) / A_p
        else:
            u, w = x.m / (gamma * c), x.r / (gamma * c)  # u = m_hat - Vh_st m_p,  w = m_hat m_p - Vh_st q_p
            det = m_p**2 - q_p
            m_hat, Vh_st = (w * m_p - u * q_p) / det, (w - u * m_p) / det
            B, Q_ts = m_hat * m_p, jnp.zeros_like(m_hat)
        g = gamma / s.gamma
        C = x.sigma2 / (gamma * c**2) - (1.0 - g) * (Vh_st * q_p - B) ** 2 / q_p + B**2 / q_p
        return dict(m_hat=m_hat, Q_ss=C - m_hat**2, Q_ts=Q_ts, Vh_ss=1.0 / c - self.params.lam, Vh_st=Vh_st)

    def summary(self, x: StudentState, history) -> Summary:
        return Summary(m=x.m, q=x.q(history[-1].summary), b=x.b, V=x.V,
                       gamma=jnp.asarray(self.params.gamma, x.m.dtype), r_teacher=self.r_teacher(x, history),
                       m_teacher=history[-1].summary.m_teacher)

    def r_teacher(self, x: StudentState, history):
        """The overlap with the teacher, ``w_0,S . w / N`` (3.8).

        After the teacher it is ``r``.  On fresh inputs ``w = c (m_hat v + xi - V_hat_st w_p)``
        per coordinate, with ``xi`` independent of every earlier generation, so ``X = gamma c m_hat``
        and ``Y = gamma c V_hat_st`` follow from ``m = X - Y m_p'`` and ``r = X m_p' - Y q_p'`` (the
        predecessor's per-coordinate moments ``m_p' = m_p / gamma_p``, ``q_p' = q_p / gamma_p``), and
        ``r_teacher = X m_0 - Y r_p,0 / gamma_p``.
        """
        s = history[-1].summary
        if isinstance(history[-1].generation, ERM):
            return x.r
        m_p, q_p = s.m / s.gamma, s.q / s.gamma
        det = q_p - m_p**2  # > 0: the predecessor's weights carry noise besides v
        X = (x.m * q_p - x.r * m_p) / det
        Y = (x.m * m_p - x.r) / det
        return X * s.m_teacher - Y * s.r_teacher / s.gamma

    def observables(self, x: StudentState, mixture, history) -> dict:
        q = x.q(history[-1].summary)
        return dict(gen_error=gen_error_unchecked(x.m, q, x.b, mixture.delta, mixture.rho), r=x.r)

    def training(self, x: StudentState, mixture, history, config):
        """Training error (against the observed labels) and KD loss per sample."""
        p = history[-1]
        nodes = _Nodes(self, x, p, mixture, config)
        _, h = self._output(nodes.h_p, nodes.f_p, nodes.omega, nodes.y_obs, x, config)
        train_loss = nodes.average(KD_LOSS.value(h, *self._labels(nodes.y_obs, nodes.h_p)))
        return self._train_error(x, p, nodes, mixture, config), train_loss

    def _train_error(self, x: StudentState, p, nodes, mixture, config):
        """Fraction of the training samples misclassified (3.6).

        ``y~ h < 0`` iff ``y~ omega' < y~ V L'(0)`` (the prox is increasing).  Given the
        predecessor's node ``xi_1`` this is a Gaussian event in ``xi_2``, in closed form; the
        remaining ``xi_1`` integrand can be a near-step (small ``sigma2``), so it is split at its
        crossing and each side integrated by Gauss-Legendre on [-L, L].
        """
        y, sd = nodes.y_obs, jnp.sqrt(mixture.delta)

        def margin(xi1):  # y~ (threshold - conditional mean): P(wrong | xi1) = Phi(margin / (sd cond_sd))
            h_p, f_p = self.inputs.predecessor_output(p.generation, p.state, nodes.mean_p + nodes.sd_p * xi1, y,
                                                      config)
            threshold = x.V * KD_LOSS.grad(jnp.zeros_like(h_p), *self._labels(y, h_p)) - x.V_st * f_p
            return y * (threshold - nodes.mean - sd * nodes.slope * xi1)

        L = 12.0
        lo, hi = jnp.full(y.shape, -L, y.dtype), jnp.full(y.shape, L, y.dtype)
        cut = bisect_root(margin, lo, hi)
        total = 0.0
        for a, b in ((lo, cut), (cut, hi)):
            xi1, w = gauss_legendre(a[:, 0], b[:, 0], config.degree)
            wrong = normal_cdf(margin(xi1) / (sd * nodes.cond_sd))
            total = total + jnp.sum(w * normal_pdf(xi1) * wrong, axis=-1)
        return row_average(nodes.weight, total)

    def finite(self, mixture):
        return has_finite_minimiser(mixture, self.params)

    def check(self, mixture, where: str = "") -> None:
        check_student(mixture, self.params, where)
