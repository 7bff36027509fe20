"""A same-input generation ``k >= 2``: KD on the teacher's inputs after other students (docs/chains.md).

On a training sample of the teacher the cavity fields of all generations ``0..k`` are jointly
Gaussian (C.1), ``omega_j = y m_j + b_j + sqrt(delta) sum_l L_jl e_l``, and each earlier generation
``j`` that trained on the sample has moved its output by its response to the sample's forces
(C.2): ``omega_j' = omega_j + sum_{l<j} V_jl f_l``, ``h_j = prox_j(omega_j')``, ``f_j = (h_j - omega_j') / V_jj``.
Generation ``k`` is taught by ``h_{k-1}``, itself so moved.  The Gaussian average is a nested
conditional rule (C.12): the teacher's channel nodes in ``e_0``, Gauss-Hermite in each later ``e_j``.

Everything about the earlier generations at the nodes (their outputs, forces and derivatives) does
not depend on generation ``k``'s state: it is computed once per solve (``prepare``, the ``Frame``),
outside the fixed-point loop.  The state ``SameState(m, b, L, sigma2, V, Xi)`` holds ``m_k, b_k``, the
Cholesky row ``L_k0..L_k,k-1``, ``sigma2 = L_kk^2``, the responses ``V_k0..V_kk`` and the noise
covariances ``Xi_k0..Xi_kk``; the map (C.4)-(C.11) uses the algebra of ``records.update``.  ``Xi`` is
carried for the generation's ``Record`` only (the map does not read it): at the fixed point it holds
the Gaussian averages at the solution, differentiable like every other component, so the record is
algebra (``records.solved_conjugates``) and costs no second pass over the nodes.  Generation 1 on the same inputs is the
student of ``kd.py`` (the same equations with one predecessor, to 1e-14).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._losses import KD as KD_LOSS
from .._observables import gen_error_unchecked
from .._quadrature import gauss_hermite, label_rows, normal_cdf, row_average, safe_sqrt
from .base import Summary
from .kd import KD, output_partials
from .records import Record, Stack, project, record_of, solved_conjugates, update


def nodes_per_level(k: int, config) -> tuple:
    """Nodes of the nested rule of a depth-``k`` same-input generation, levels ``0..k``: ``config.chain_nodes``
    or the default rule (docs/chains.md, Sec. 7)."""
    n0, n = config.chain_nodes or (48, {2: 8, 3: 6}.get(k, 4))
    return (n0,) + (n,) * k


class SameState(eqx.Module):
    """Fixed-point state of a same-input generation ``k`` (module docstring)."""

    m: jax.Array
    b: jax.Array
    L: jax.Array
    sigma2: jax.Array
    V: jax.Array
    Xi: jax.Array


class Frame(eqx.Module):
    """The earlier generations ``0..k-1`` at the nested nodes of a teacher's training sample.

    Arrays ``(R, P)`` (label rows, nodes of levels ``0..k-1``): ``e`` (k, R, P) the standard
    fields ``e_l``; ``f`` (k, R, P) the forces (0 for a generation that did not train on the
    sample); ``df`` (k, k, R, P) ``d f_j / d omega_l``; ``h_prev`` and ``dh_prev`` (k, R, P)
    generation ``k-1``'s output and its derivatives; ``w`` the node weights.
    """

    y: jax.Array
    y_obs: jax.Array
    weight: jax.Array
    e: jax.Array
    f: jax.Array
    df: jax.Array
    h_prev: jax.Array
    dh_prev: jax.Array
    w: jax.Array


class Context(eqx.Module):
    """What a same-input generation reads of the chain before it: the earlier generations'
    ``records`` and their outputs at the nodes (the ``frame``)."""

    records: tuple
    frame: Frame


def _frame(history, mixture, config) -> Frame:
    """Outputs of generations ``0..k-1`` at the nested nodes (C.2), (C.4), (C.12).

    Every level lives on the full grid of nodes ``(R, n_0, ..., n_{k-1})`` (flattened to ``(R, P)``;
    a generation's arrays are constant along the later levels), so generations ``1..k-1`` are one
    ``lax.scan`` of the same step, and the program does not grow with the depth."""
    k = len(history)
    degrees = nodes_per_level(k, config)[:k]
    records = [s.record for s in history]
    s = Stack.of(records)
    y, y_obs, weight = label_rows(mixture)
    R, sd, dtype = y.shape[0], jnp.sqrt(mixture.delta), y.dtype
    t = records[0]
    mean0, sd0 = y * t.m + t.b, sd * safe_sqrt(t.q)
    ch = history[0].generation.output_channel(history[0].state, y_obs, mean0, sd0, degrees[0], config)
    grid = (R,) + degrees

    def level(a, j):  # an array of levels 0..j, (R or 1, n_0 or 1, ..., n_j), on the full grid (R, P)
        return jnp.broadcast_to(jnp.reshape(a, a.shape + (1,) * (k - 1 - j)), grid).reshape(R, -1)

    hermite = [gauss_hermite(n, dtype) for n in degrees[1:]]
    axis = lambda v, j: jnp.reshape(v, (1,) * (j + 1) + v.shape)  # nodes of level j on their own axis
    e = jnp.stack([level((ch.omega - mean0) / sd0, 0)] + [level(axis(x, j), j) for j, (x, _) in enumerate(hermite, 1)])
    w = level(ch.w, 0)
    for j, (_, wj) in enumerate(hermite, 1):
        w = w * level(axis(wj, j), j)
    first = lambda a: jnp.zeros((k,) + a.shape, dtype).at[0].set(a)  # generation 0's row, later rows 0
    slope = level(ch.slope, 0)
    f0 = level((ch.h - ch.omega) / t.V[0], 0)
    carry = (first(f0), first(first((slope - 1.0) / t.V[0])), level(ch.h, 0), first(slope))
    later = history[1:]
    responds = [g.generation.inputs.responds for g in later]
    rows = dict(j=jnp.arange(1, k), m=jnp.stack([r.m for r in records[1:]]), b=jnp.stack([r.b for r in records[1:]]),
                L=s.L[1:], V=s.V[1:], T=jnp.stack([jnp.asarray(g.generation.params.temperature, dtype) for g in later]),
                a=jnp.stack([jnp.asarray(g.generation.params.hard_weight, dtype) for g in later]),
                responds=jnp.asarray(responds))

    def generation(carry, row):  # generation j = row["j"] at every node, given generations 0..j-1 (C.2), (C.4)
        f, df, h_prev, dh_prev = carry
        j = row["j"]
        V_jj = row["V"][j]
        V = jnp.where(jnp.arange(k) < j, row["V"], 0.0)  # the responses to the earlier generations' forces
        omega_p = y * row["m"] + row["b"] + sd * jnp.tensordot(row["L"], e, axes=1) + jnp.tensordot(V, f, 1)
        domega_p = (jnp.arange(k) == j)[:, None, None] + jnp.tensordot(V, df, axes=1)  # d omega_j' / d omega_l
        h, d_o, d_hp = output_partials(omega_p, h_prev, V_jj, y_obs, row["T"], row["a"], config)
        dh = d_o * domega_p + d_hp * dh_prev
        fj, dfj = (h - omega_p) / V_jj, (dh - domega_p) / V_jj
        if not all(responds):  # a generation that did not train on this sample: no force, its output is its field
            h, dh = jnp.where(row["responds"], h, omega_p), jnp.where(row["responds"], dh, domega_p)
            fj, dfj = jnp.where(row["responds"], fj, 0.0), jnp.where(row["responds"], dfj, 0.0)
        return (f.at[j].set(fj), df.at[j].set(dfj), h, dh), None

    (f, df, h_prev, dh_prev), _ = jax.lax.scan(generation, carry, rows)
    return Frame(y=y, y_obs=y_obs, weight=weight, e=e, f=f, df=df, h_prev=h_prev, dh_prev=dh_prev, w=w)


class _Nodes(eqx.Module):
    """Generation ``k`` at the nodes of all levels ``(R, P, n_k)``: its force ``f``, its partial
    derivatives ``f_o = d f / d omega_k'`` and ``f_hp = d f / d h_{k-1}``, output ``h``, teacher's output
    ``h_prev``, the shifted field and the weights."""

    f: jax.Array
    f_o: jax.Array
    f_hp: jax.Array
    h: jax.Array
    h_prev: jax.Array
    omega_p: jax.Array
    w: jax.Array


class SameKD(KD):
    """A distilled generation on the teacher's inputs after at least one other student."""

    def needs(self, history: tuple) -> tuple:
        """Every earlier generation, with its ``Record``."""
        return history

    reads_records: ClassVar[bool] = True
    unread: ClassVar[tuple] = ("Xi",)

    def prepare(self, mixture, history, config) -> Context:
        return Context(records=tuple(s.record for s in history),
                       frame=_frame(history, mixture, config))

    def valid(self, x: SameState):
        return x.V[-1] > 0

    def start(self, mixture, context: Context) -> SameState:
        """Generation ``k - 1`` restricted to generation ``k``'s coordinates, ``w_k = w_{k-1} 1_{S_k}``."""
        k = len(context.records)
        s = Stack.of(context.records)
        p = context.records[-1]
        g, gp = self.params.gamma, p.gamma
        # rho = w_k - w_{k-1} = -w_{k-1} 1_{S_{k-1} \ S_k}
        rho_w = -(jnp.minimum(s.gamma, gp) - g) * s.M[k - 1]
        pr = project(s, rho_w)
        ratio = g / gp
        return SameState(m=ratio * p.m, b=p.b, L=jnp.pad(p.L, (0, k - p.L.shape[0])) + pr,
                         sigma2=(gp - g) * s.M[k - 1, k - 1] - jnp.sum(pr**2),
                         V=ratio * jnp.concatenate([p.V, p.V[-1:]]), Xi=jnp.concatenate([p.Xi, p.Xi[-1:]]))

    def _nodes(self, x: SameState, mixture, frame: Frame, config) -> _Nodes:
        k = frame.e.shape[0]
        sd = jnp.sqrt(mixture.delta)
        xk, wk = gauss_hermite(nodes_per_level(k, config)[k], frame.y.dtype)
        ex = lambda a: a[..., None]
        omega = ex(frame.y * x.m + x.b + sd * jnp.tensordot(x.L, frame.e, axes=1)) + sd * safe_sqrt(x.sigma2) * xk
        omega_p = omega + ex(jnp.tensordot(x.V[:k], frame.f, axes=1))  # (C.2)
        h_prev = jnp.broadcast_to(ex(frame.h_prev), omega.shape)
        h, d_o, d_hp = self.output_partials(omega_p, h_prev, x.V[k], ex(frame.y_obs), config)
        return _Nodes(f=(h - omega_p) / x.V[k], f_o=(d_o - 1.0) / x.V[k], f_hp=d_hp / x.V[k], h=h, h_prev=h_prev,
                      omega_p=omega_p, w=ex(frame.w) * wk)

    def _conjugates(self, x: SameState, mixture, frame: Frame, config):
        """``(m_hat, V_hat_k., Xi_k., E[f], E[D_kk])`` at ``x`` (C.6).

        The earlier generations' forces and derivatives do not vary along level ``k``, so their
        products with generation ``k``'s are summed over level ``k`` first: ``d f_k / d omega_l =
        f_o (d omega_k' / d omega_l) + f_hp (d h_{k-1} / d omega_l)`` for ``l < k`` (C.4)."""
        k = frame.e.shape[0]
        n = self._nodes(x, mixture, frame, config)
        over_k = lambda g: jnp.sum(n.w * g, axis=-1)  # (R, P): the level-k sum
        mean = lambda g: jnp.sum(over_k(g), axis=-1) @ frame.weight
        earlier = lambda a, g: jnp.einsum("lrp,rp,r->l", a, g, frame.weight)  # E[a_l g] for l < k
        alpha, delta = mixture.alpha, mixture.delta
        dom = jnp.tensordot(x.V[:k], frame.df, axes=1)  # d omega_k' / d omega_l - delta_kl   (C.4)
        D_k = mean(n.f_o)
        Xi_row = alpha * delta * jnp.concatenate([earlier(frame.f, over_k(n.f)), mean(n.f**2)[None]])
        V_hat = -alpha * delta * jnp.concatenate([earlier(dom, over_k(n.f_o)) + earlier(frame.dh_prev, over_k(n.f_hp)),
                                                  D_k[None]])
        return alpha * mean(frame.y[..., None] * n.f), V_hat, Xi_row, mean(n.f), -D_k

    def map(self, x: SameState, mixture, context: Context, config) -> SameState:
        """One application of the saddle-point map (C.2)-(C.11)."""
        m_hat, V_hat, Xi_row, Ef, ED = self._conjugates(x, mixture, context.frame, config)
        st = self.params
        w = update(context.records, st.gamma, st.lam, mixture.delta, m_hat, V_hat, Xi_row)
        return SameState(m=w.m, b=x.b + Ef / ED, L=w.L, sigma2=w.sigma2, V=w.V, Xi=Xi_row)

    def record(self, x: SameState, mixture, history, records, config) -> Record:
        """Its chain ``Record`` from the state alone: ``m_hat, V_hat`` from ``m, V``, ``Xi`` as carried."""
        st = self.params
        m_hat, V_hat = solved_conjugates(records, st.gamma, st.lam, mixture.delta, x.m, x.V)
        w = update(records, st.gamma, st.lam, mixture.delta, m_hat, V_hat, x.Xi)
        return record_of(w, x.b, st.gamma, x.Xi)

    def _overlaps(self, x: SameState, context: Context):
        """``q``, ``r`` with generation ``k - 1`` and ``r_teacher`` (C.7), (C.10)."""
        k = len(context.records)
        prev = context.records[-1]
        q = jnp.sum(x.L**2) + x.sigma2
        return q, jnp.dot(x.L, jnp.pad(prev.L, (0, k - prev.L.shape[0]))), x.L[0] * context.records[0].L[0]

    def summary(self, x: SameState, context: Context) -> Summary:
        q, _, r_teacher = self._overlaps(x, context)
        return Summary(m=x.m, q=q, b=x.b, V=x.V[-1], gamma=jnp.asarray(self.params.gamma, x.m.dtype),
                       r_teacher=r_teacher, m_teacher=context.records[0].m)

    def observables(self, x: SameState, mixture, context: Context) -> dict:
        q, r, _ = self._overlaps(x, context)
        return dict(gen_error=gen_error_unchecked(x.m, q, x.b, mixture.delta, mixture.rho), r=r)

    def training(self, x: SameState, mixture, context: Context, config):
        """Training error (against the observed labels) and KD loss per sample.

        ``y~ h_k < 0`` iff ``y~ omega_k' < y~ V_kk L'(0)`` (the prox is increasing): given the earlier
        levels a Gaussian event in ``e_k``, in closed form; the earlier levels by the nested rule.
        """
        frame = context.frame
        k = frame.e.shape[0]
        n = self._nodes(x, mixture, frame, config)
        mean = lambda g: row_average(frame.weight, jnp.sum(n.w * g, axis=(-2, -1)))
        y_obs = frame.y_obs[..., None]
        train_loss = mean(KD_LOSS.value(n.h, *self._labels(y_obs, n.h_prev)))
        sd = jnp.sqrt(mixture.delta)
        shifted = (frame.y * x.m + x.b + sd * jnp.tensordot(x.L, frame.e, axes=1)
                   + jnp.tensordot(x.V[:k], frame.f, axes=1))
        threshold = x.V[k] * KD_LOSS.grad(jnp.zeros_like(frame.h_prev), *self._labels(frame.y_obs, frame.h_prev))
        width = sd * safe_sqrt(x.sigma2)
        margin = frame.y_obs * (threshold - shifted)
        wrong = jnp.where(width > 0, normal_cdf(margin / jnp.where(width > 0, width, 1.0)), margin > 0)
        return row_average(frame.weight, jnp.sum(frame.w * wrong, axis=-1)), train_loss
