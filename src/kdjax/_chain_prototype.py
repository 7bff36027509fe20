"""PROTOTYPE (helper session 4): same-input chains of any depth, docs/chains.md.  Not exported;
to be folded into kdjax._generations as the same-input KD generation (issue 17).

Distillation chains of any depth: prototype of the exact theory (docs/chains.md).

Generation 0 is the teacher, generation ``k >= 1`` a KD student of generation ``k - 1``
(docs/model.md, "Distillation chains").  Generations are solved one after the other (a fold); each
solved generation is summarised by a ``Gen`` record, which is all the later generations need:

* ``m, b, q, gamma``: its order parameters and coordinate fraction;
* ``L`` (length ``k + 1``): row ``k`` of the Cholesky factor of the overlap matrix
  ``Q_jl = w_j . w_l / N`` of generations ``0..k`` (zero-padded weights), ``L[k]^2 = sigma2``
  the part of ``q_k`` not explained by the earlier generations (C.9);
* ``V`` (length ``k + 1``): the responses ``V_kl`` of generation ``k``'s output to the forcing
  of a training sample on generation ``l`` (C.3, C.8);
* ``a, B, Xi``: the per-coordinate representation (C.5)
  ``w_k = a_k v + sum_l B_kl xi_l`` on ``S_k``, with the noise covariances
  ``Xi_kl = E[xi_k xi_l]`` (C.6) of row ``k``.

Same-input generations: the joint cavity fields of all generations on a teacher's training
sample (C.1) are integrated by nested conditional rules (C.12): the teacher's ``channel``
nodes in ``e_0``, Gauss-Hermite in the later ``e_j``.  Everything that depends only on the
earlier generations (their outputs and their derivatives at the nodes) is computed once per
generation (``same_frame``), outside its fixed-point loop.  Fresh-input generations use the 2-D
rule of the one-student code with their predecessor's field only.

Pure JAX, no checks; float64 is the caller's choice.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._losses import KD
from ._observables import agreement_unchecked, gen_error_unchecked
from ._params import Mixture, SolverConfig, Student, Teacher
from ._quadrature import gauss_hermite, label_rows, row_average, safe_sqrt, sinh_rule
from ._solve import RESULTS, solve_fixed_point
from ._generations.erm import TeacherState
from ._generations.solve import solve_teacher

# A pivot sigma2_l <= PIVOT * q_l marks generation l as (numerically) a linear combination
# of the earlier ones: it adds no direction to the field space (C.10).
PIVOT = 1e-16


class Gen(eqx.Module):
    """A solved generation ``k`` as the later generations see it (module docstring)."""

    m: jax.Array
    b: jax.Array
    q: jax.Array
    gamma: jax.Array
    sigma2: jax.Array
    L: jax.Array
    V: jax.Array
    a: jax.Array
    B: jax.Array
    Xi: jax.Array


class SameState(eqx.Module):
    """Fixed-point state of a same-input generation ``k``: ``m, b``, the Cholesky row
    ``L[:k]`` against the earlier generations, ``sigma2 = L_kk^2`` and the responses ``V``
    (length ``k + 1``, ``V[k] = V_kk``)."""

    m: jax.Array
    b: jax.Array
    L: jax.Array
    sigma2: jax.Array
    V: jax.Array


class FreshState(eqx.Module):
    """Fixed-point state of a fresh-input generation: ``m, b``, ``r = Q_{k,k-1}``,
    ``sigma2 = q_k - r^2 / q_{k-1}`` and ``V = V_kk`` (the one-student state of the fresh case)."""

    m: jax.Array
    b: jax.Array
    r: jax.Array
    sigma2: jax.Array
    V: jax.Array


class GenResult(eqx.Module):
    """Observables of generation ``k`` (docs/model.md: ``r`` and ``agreement`` against ``k - 1``),
    ``r_teacher = w_0,S . w_k / N``, the solved ``record`` and the solver's diagnostics."""

    gen_error: jax.Array
    m: jax.Array
    q: jax.Array
    b: jax.Array
    r: jax.Array
    agreement: jax.Array
    r_teacher: jax.Array
    train_loss: jax.Array
    V: jax.Array
    residual: jax.Array
    iterations: jax.Array
    result: RESULTS
    record: Gen


# --------------------------------------------------------------------------- records


def teacher_record(t: TeacherState, mixture: Mixture) -> Gen:
    """Generation 0 from the solved teacher: ``w_0 = c_0 (m_hat_0 v + xi_0)``, ``c_0 = V_0/delta``,
    ``a_0 = m_0``, ``B_00 = c_0``, ``Xi_00 = (q_0 - m_0^2) / c_0^2`` (2.2)-(2.3)."""
    c0 = t.V / mixture.delta
    one = lambda x: jnp.reshape(x, (1,))
    return Gen(m=t.m, b=t.b, q=t.q, gamma=jnp.ones_like(t.m), sigma2=t.q, L=one(jnp.sqrt(t.q)), V=one(t.V),
               a=t.m, B=one(c0), Xi=one((t.q - t.m**2) / c0**2))


def _stack(chain):
    """Matrices of the earlier generations ``0..k-1``: lower-triangular ``L``, ``V``, ``B``
    (padded to ``k x k``), the symmetric ``Xi``, vectors ``a``, ``gamma``, ``q`` and the
    per-coordinate moments ``M_jl = E[w_j w_l]`` (C.7)."""
    k = len(chain)
    pad = lambda row: jnp.pad(row, (0, k - row.shape[0]))
    L = jnp.stack([pad(g.L) for g in chain])
    V = jnp.stack([pad(g.V) for g in chain])
    B = jnp.stack([pad(g.B) for g in chain])
    Xi_low = jnp.stack([pad(g.Xi) for g in chain])
    Xi = Xi_low + Xi_low.T - jnp.diag(jnp.diag(Xi_low))
    a = jnp.stack([g.a for g in chain])
    gamma = jnp.stack([g.gamma for g in chain])
    q = jnp.stack([g.q for g in chain])
    M = jnp.outer(a, a) + B @ Xi @ B.T
    return dict(L=L, V=V, B=B, Xi=Xi, a=a, gamma=gamma, q=q, M=M)


def _forward_sub(L, q, rhs):
    """``p_l = <rho, e_l>`` from ``rhs_l = <rho, w_l>`` (C.10): forward substitution in the
    Cholesky factor, skipping the generations that add no direction."""
    k = L.shape[0]
    p = []
    for l in range(k):
        piv = L[l, l]
        alive = piv**2 > PIVOT * q[l]
        num = rhs[l] - sum((L[l, j] * p[j] for j in range(l)), 0.0)
        p.append(jnp.where(alive, num / jnp.where(alive, piv, 1.0), 0.0))
    return jnp.stack(p) if p else jnp.zeros((0,), rhs.dtype)


def update(chain, gamma, lam, delta, m_hat, Vh, Xi_row):
    """Weights of generation ``k = len(chain)`` from its conjugates (C.5)-(C.10).

    ``Vh`` and ``Xi_row`` have length ``k + 1`` (``l = 0..k``).  Returns ``m, sigma2``, the
    Cholesky row ``L[:k]``, the response row ``V`` (length ``k + 1``) and the per-coordinate
    representation ``a, B``.
    """
    k = len(chain)
    s = _stack(chain)
    c = 1.0 / (lam + Vh[k])
    v = Vh[:k]
    a = c * (m_hat - v @ s["a"])  # (C.5)
    B = c * (jnp.eye(k + 1, dtype=c.dtype)[k] - jnp.pad(v @ s["B"], (0, 1)))
    # Green's function G_kl = -c sum_{j=l}^{k-1} Vh_kj G_jl with G_jl = V_jl / (delta gamma_j)   (C.8)
    G = s["V"] / (delta * s["gamma"][:, None])
    V = delta * gamma * jnp.concatenate([-c * (v @ G), c[None]])
    # rho_k = w_k + c sum_l Vh_kl w_l = c [Y_k 1_{S_k} + sum_l Vh_kl w_l 1_{S_l \ S_k}]   (C.9)
    EYw = m_hat * s["a"] + s["B"] @ Xi_row[:k]  # per-coordinate E[Y_k w_j]
    gmin = jnp.minimum(s["gamma"][:, None], s["gamma"][None, :])
    outside = (gmin - gamma) * s["M"]  # <w_l 1_{out}, w_j 1_{out}>
    rho_w = c * (gamma * EYw + v @ outside)
    rho2 = c**2 * (gamma * (m_hat**2 + Xi_row[k]) + v @ outside @ v)
    p = _forward_sub(s["L"], s["q"], rho_w)
    L = -c * (v @ s["L"]) + p  # (C.10)
    sigma2 = rho2 - jnp.sum(p**2)
    return dict(m=gamma * a, sigma2=sigma2, L=L, V=V, a=a, B=B)


def record_from(chain, gamma, up, b, Xi_row) -> Gen:
    """The ``Gen`` record of a solved generation from its ``update`` output."""
    q = jnp.sum(up["L"] ** 2) + up["sigma2"]
    L = jnp.concatenate([up["L"], safe_sqrt(up["sigma2"])[None]])
    return Gen(m=up["m"], b=b, q=q, gamma=jnp.asarray(gamma, q.dtype), sigma2=up["sigma2"], L=L, V=up["V"],
               a=up["a"], B=up["B"], Xi=Xi_row)


# --------------------------------------------------------------------------- same inputs


def _labels(y_obs, h_prev, spec: Student):
    return y_obs, h_prev / spec.temperature, spec.hard_weight, spec.temperature


def _kd_output(omega_p, h_prev, V, y_obs, spec: Student, steps):
    """``h = prox_{V L}(omega')`` with its partials in ``omega'`` and ``h_prev`` (C.2)."""
    h, lin = jax.linearize(lambda o, hp: KD.prox(o, V, *_labels(y_obs, hp, spec), steps=steps), omega_p, h_prev)
    one, zero = jnp.ones_like(h), jnp.zeros_like(h)
    return h, lin(one, zero), lin(zero, one)


class Frame(eqx.Module):
    """The earlier generations ``0..k-1`` at the nested nodes of a teacher's training sample.

    Arrays ``(R, P)`` (label rows, earlier nodes): ``e`` (k, R, P) the standard fields
    ``u_j = sum_l L_jl e_l``; ``f`` (k, R, P) the forcings ``f_j`` (0 for a generation that did
    not train on this sample); ``df`` (k, k, R, P) ``d f_j / d omega_l``; ``h_prev`` and
    ``dh_prev`` (k, R, P): generation ``k-1``'s output and its derivatives; ``w`` the weights.
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


def same_frame(chain, specs, mixture: Mixture, teacher: Teacher, degrees, steps: int) -> Frame:
    """Outputs of generations ``0..k-1`` at the nested nodes (C.12), ``k = len(chain)``.

    Level 0: the teacher loss's ``channel`` nodes (``degrees[0]``), so ``h_0`` and
    ``dh_0/d omega_0`` come with the nodes.  Level ``j >= 1``: Gauss-Hermite in ``e_j``
    (``degrees[j]``) on the conditional noise of generation ``j`` given the earlier fields.
    """
    k = len(chain)
    y, y_obs, weight = label_rows(mixture)
    R = y.shape[0]
    sd = jnp.sqrt(mixture.delta)
    t = chain[0]
    mean0, sd0 = y * t.m + t.b, sd * jnp.sqrt(t.q)
    ch = teacher.loss.channel(y_obs, mean0, sd0, t.V[0], degrees[0], steps)
    shape = (R, degrees[0])
    e = [(ch.omega - mean0) / sd0]
    w = ch.w
    h = [ch.h]
    f = [(ch.h - ch.omega) / t.V[0]]
    zero = jnp.zeros(shape, y.dtype)
    # derivatives wrt omega_0..omega_{k-1}
    dh = [[ch.slope] + [zero] * (k - 1)]
    df = [[(ch.slope - 1.0) / t.V[0]] + [zero] * (k - 1)]
    for j in range(1, k):
        g, spec = chain[j], specs[j - 1]
        x, wj = gauss_hermite(degrees[j], y.dtype)
        grow = lambda a: a[..., None]
        e, h, f = [grow(a) for a in e], [grow(a) for a in h], [grow(a) for a in f]
        dh = [[grow(a) for a in row] for row in dh]
        df = [[grow(a) for a in row] for row in df]
        w = w[..., None] * wj
        shape = shape + (degrees[j],)
        e.append(jnp.broadcast_to(x, shape))
        omega = (y * g.m + g.b)[(...,) + (None,) * (len(shape) - 2)] + sd * sum(
            g.L[l] * e[l] for l in range(j + 1))
        omega_p = omega + sum(g.V[l] * f[l] for l in range(j))
        domega_p = [(1.0 if l == j else 0.0) + sum(g.V[m] * df[m][l] for m in range(j)) for l in range(k)]
        domega_p = [jnp.broadcast_to(a, shape) for a in domega_p]
        yo = y_obs[(...,) + (None,) * (len(shape) - 2)]
        if spec.data == "same":
            hj, d_o, d_hp = _kd_output(omega_p, jnp.broadcast_to(h[j - 1], shape), g.V[j], yo, spec, steps)
            dhj = [d_o * domega_p[l] + d_hp * dh[j - 1][l] for l in range(k)]
            fj = (hj - omega_p) / g.V[j]
            dfj = [(dhj[l] - domega_p[l]) / g.V[j] for l in range(k)]
        else:  # generation j did not train on this sample: no forcing, output = shifted field
            hj, dhj = omega_p, domega_p
            fj, dfj = jnp.zeros(shape, y.dtype), [jnp.zeros(shape, y.dtype)] * k
        h.append(hj)
        f.append(fj)
        dh.append(dhj)
        df.append(dfj)
    flat = lambda a: jnp.broadcast_to(a, shape).reshape(R, -1)
    return Frame(
        y=y, y_obs=y_obs, weight=weight, e=jnp.stack([flat(a) for a in e]), f=jnp.stack([flat(a) for a in f]),
        df=jnp.stack([jnp.stack([flat(a) for a in row]) for row in df]), h_prev=flat(h[k - 1]),
        dh_prev=jnp.stack([flat(a) for a in dh[k - 1]]), w=flat(w),
    )


def _same_nodes(x: SameState, frame: Frame, mixture, spec, degree, steps):
    """Generation ``k``'s output at the nodes: ``(f_k, d f_k / d omega_l for l = 0..k)``, the
    node weights and the earlier forcings, all ``(R, P, n_k)``."""
    k = frame.e.shape[0]
    sd = jnp.sqrt(mixture.delta)
    xk, wk = gauss_hermite(degree, frame.y.dtype)
    ex = lambda a: a[..., None]
    omega = ex((frame.y * x.m + x.b) + sd * jnp.tensordot(x.L, frame.e, axes=1)) + sd * safe_sqrt(x.sigma2) * xk
    omega_p = omega + ex(jnp.tensordot(x.V[:k], frame.f, axes=1))
    shape = omega.shape
    h_prev = jnp.broadcast_to(ex(frame.h_prev), shape)
    h, d_o, d_hp = _kd_output(omega_p, h_prev, x.V[k], ex(frame.y_obs), spec, steps)
    f = (h - omega_p) / x.V[k]
    f_o, f_hp = (d_o - 1.0) / x.V[k], d_hp / x.V[k]
    # d omega'_k / d omega_l = delta_kl + sum_m V_km df_m/d omega_l                         (C.4)
    dom = jnp.tensordot(x.V[:k], frame.df, axes=1)  # (k, R, P)
    df = [f_o * ex(dom[l]) + f_hp * ex(frame.dh_prev[l]) for l in range(k)] + [f_o]
    w = ex(frame.w) * wk
    return f, df, w, h, h_prev


def same_map(x: SameState, args, degree: int, steps: int) -> SameState:
    """One application of the saddle-point map of a same-input generation (C.2)-(C.11)."""
    chain, frame, mixture, spec = args
    k = len(chain)
    f, df, w, _, _ = _same_nodes(x, frame, mixture, spec, degree, steps)
    mean = lambda g: row_average(frame.weight, jnp.sum(w * g, axis=(-2, -1)))
    alpha, delta = mixture.alpha, mixture.delta
    y = frame.y[..., None]
    m_hat = alpha * mean(y * f)
    fs = [frame.f[l][..., None] for l in range(k)] + [f]
    Xi_row = jnp.stack([alpha * delta * mean(f * fl) for fl in fs])  # (C.6)
    Vh = jnp.stack([-alpha * delta * mean(d) for d in df])  # (C.6)
    up = update(chain, spec.gamma, spec.lam, delta, m_hat, Vh, Xi_row)
    D_kk = -df[k]
    return SameState(m=up["m"], b=x.b + mean(f) / mean(D_kk), L=up["L"], sigma2=up["sigma2"], V=up["V"])


def same_conjugates(x: SameState, args, degree: int, steps: int):
    """``(m_hat, Vh, Xi_row)`` at ``x`` (to build the record at the fixed point)."""
    chain, frame, mixture, spec = args
    k = len(chain)
    f, df, w, _, _ = _same_nodes(x, frame, mixture, spec, degree, steps)
    mean = lambda g: row_average(frame.weight, jnp.sum(w * g, axis=(-2, -1)))
    alpha, delta = mixture.alpha, mixture.delta
    fs = [frame.f[l][..., None] for l in range(k)] + [f]
    Xi_row = jnp.stack([alpha * delta * mean(f * fl) for fl in fs])
    Vh = jnp.stack([-alpha * delta * mean(d) for d in df])
    return alpha * mean(frame.y[..., None] * f), Vh, Xi_row


def same_start(chain, spec: Student) -> SameState:
    """Generation ``k - 1`` restricted to generation ``k``'s coordinates (``w_k = w_{k-1} 1_{S_k}``)."""
    k = len(chain)
    s = _stack(chain)
    p_ = chain[-1]
    g, gp = spec.gamma, p_.gamma
    # rho = w_k - w_{k-1} = -w_{k-1} 1_{S_{k-1} \ S_k}
    gmin = jnp.minimum(s["gamma"], gp)
    rho_w = -(gmin - g) * s["M"][k - 1]
    rho2 = (gp - g) * s["M"][k - 1, k - 1]
    pr = _forward_sub(s["L"], s["q"], rho_w)
    L = jnp.pad(p_.L, (0, k - p_.L.shape[0])) + pr
    ratio = g / gp
    V = ratio * jnp.concatenate([p_.V, p_.V[-1:]])
    return SameState(m=ratio * p_.m, b=p_.b, L=L, sigma2=rho2 - jnp.sum(pr**2), V=V)


# --------------------------------------------------------------------------- fresh inputs


def _fresh_nodes(x: FreshState, prev: Gen, mixture, spec: Student, degree, steps):
    y, y_obs, weight = label_rows(mixture)
    sd = jnp.sqrt(mixture.delta)
    mean_p, sd_p = y * prev.m + prev.b, sd * jnp.sqrt(prev.q)
    xi, w1 = sinh_rule(-mean_p[:, 0] / sd_p, 1.0 / (1.0 + sd_p), degree)
    h_p = mean_p + sd_p * xi  # (R, K): the predecessor did not see this input
    xi2, w2 = gauss_hermite(degree, y.dtype)
    omega = (y * x.m + x.b + sd * (x.r / jnp.sqrt(prev.q)) * xi)[..., None] + sd * safe_sqrt(x.sigma2) * xi2
    h_p = jnp.broadcast_to(h_p[..., None], omega.shape)
    h, d_o, d_hp = _kd_output(omega, h_p, x.V, y_obs[..., None], spec, steps)
    f = (h - omega) / x.V
    w = w1[..., None] * w2
    mean = lambda g: row_average(weight, jnp.sum(w * g, axis=(-2, -1)))
    return f, (1.0 - d_o) / x.V, -d_hp / x.V, mean, y, h, h_p


def fresh_map(x: FreshState, args, degree: int, steps: int) -> FreshState:
    """The one-student fresh-input map with the predecessor ``k - 1`` as teacher (C.13)."""
    chain, mixture, spec = args
    prev = chain[-1]
    f, D_kk, D_kp, mean, y, _, _ = _fresh_nodes(x, prev, mixture, spec, degree, steps)
    alpha, delta, g = spec.alpha, mixture.delta, spec.gamma
    m_hat = alpha * mean(y[..., None] * f)
    Xi_kk = alpha * delta * mean(f**2)
    Vkk, Vh = alpha * delta * mean(D_kk), alpha * delta * mean(D_kp)
    c = 1.0 / (spec.lam + Vkk)
    a_p, M_p = prev.a, prev.q / prev.gamma
    out = prev.gamma - g
    rho_w = c * (g * m_hat * a_p + Vh * out * M_p)
    rho2 = c**2 * (g * (m_hat**2 + Xi_kk) + Vh**2 * out * M_p)
    return FreshState(m=g * c * (m_hat - Vh * a_p), b=x.b + mean(f) / mean(D_kk), r=g * c * (m_hat * a_p - Vh * M_p),
                      sigma2=rho2 - rho_w**2 / prev.q, V=delta * g * c)


def fresh_start(chain, spec: Student) -> FreshState:
    p_ = chain[-1]
    ratio = spec.gamma / p_.gamma
    return FreshState(m=ratio * p_.m, b=p_.b, r=ratio * p_.q, sigma2=ratio * (1.0 - ratio) * p_.q,
                      V=ratio * p_.V[-1])


def fresh_conjugates(x: FreshState, args, degree: int, steps: int):
    """``(m_hat, Vh, Xi_row)`` of a fresh generation in the chain's layout (C.13)."""
    chain, mixture, spec = args
    k = len(chain)
    f, D_kk, D_kp, mean, y, _, _ = _fresh_nodes(x, chain[-1], mixture, spec, degree, steps)
    alpha, delta = spec.alpha, mixture.delta
    zeros = jnp.zeros((k + 1,), f.dtype)
    Vh = zeros.at[k].set(alpha * delta * mean(D_kk)).at[k - 1].set(alpha * delta * mean(D_kp))
    Xi_row = zeros.at[k].set(alpha * delta * mean(f**2))
    return alpha * mean(y[..., None] * f), Vh, Xi_row


# --------------------------------------------------------------------------- the fold


def default_degrees(k: int, spec: Student | None = None):
    """Nodes per level of a depth-``k`` same-input generation (levels ``0..k``), see docs/chains.md."""
    if k == 1:
        return (48, 48)  # the student's rule: depth 1 is solve_student node for node
    return (48,) + ((8,) if k == 2 else (6,)) * k


def solve_generation(chain, specs, mixture, teacher, spec: Student, config: SolverConfig, degrees=None):
    """Solve generation ``k = len(chain)`` given the solved ``chain`` (records ``0..k-1``) and
    the specs of generations ``1..k-1``: returns its ``GenResult``."""
    k = len(chain)
    steps = config.newton_steps
    prev = chain[-1]
    if spec.data == "same":
        degrees = degrees or default_degrees(k)
        frame = same_frame(chain, specs, mixture, teacher, degrees, steps)
        args = (chain, frame, mixture, spec)
        F = lambda x, a: same_map(x, a, degrees[k], steps)
        fp = solve_fixed_point(F, jax.lax.stop_gradient(same_start(chain, spec)), args, config,
                               valid=lambda x: x.V[-1] > 0)
        m_hat, Vh, Xi_row = same_conjugates(fp.x, args, degrees[k], steps)
        f, _, w, h, h_prev = _same_nodes(fp.x, frame, mixture, spec, degrees[k], steps)
        loss = KD.value(h, *_labels(frame.y_obs[..., None], h_prev, spec))
        train_loss = row_average(frame.weight, jnp.sum(w * loss, axis=(-2, -1)))
    else:
        degree = (degrees or (config.degree_2d,))[-1]
        args = (chain, mixture, spec)
        F = lambda x, a: fresh_map(x, a, degree, steps)
        fp = solve_fixed_point(F, jax.lax.stop_gradient(fresh_start(chain, spec)), args, config,
                               valid=lambda x: x.V > 0)
        m_hat, Vh, Xi_row = fresh_conjugates(fp.x, args, degree, steps)
        _, _, _, mean, y, h, h_p = _fresh_nodes(fp.x, prev, mixture, spec, degree, steps)
        _, y_obs, _ = label_rows(mixture)
        train_loss = mean(KD.value(h, *_labels(y_obs[..., None], h_p, spec)))
    up = update(chain, spec.gamma, spec.lam, mixture.delta, m_hat, Vh, Xi_row)
    rec = record_from(chain, spec.gamma, up, fp.x.b, Xi_row)
    r = jnp.dot(rec.L[:k], jnp.pad(prev.L, (0, k - prev.L.shape[0])))
    r_t = rec.L[0] * chain[0].L[0]
    gen = gen_error_unchecked(rec.m, rec.q, rec.b, mixture.delta, mixture.rho)
    agree = agreement_unchecked(prev.m, prev.q, prev.b, rec.m, rec.q, r, rec.b, mixture.delta, mixture.rho)
    return GenResult(gen_error=gen, m=rec.m, q=rec.q, b=rec.b, r=r, agreement=agree, r_teacher=r_t,
                     train_loss=train_loss, V=rec.V, residual=fp.residual, iterations=fp.iterations,
                     result=fp.result, record=rec)


def solve_chain_core(mixture: Mixture, teacher: Teacher, students, config: SolverConfig = SolverConfig(), degrees=None):
    """Teacher, then each generation of ``students`` in turn: ``(TeacherResult, [GenResult])``.

    ``degrees``: optional per-generation node tuples (``None`` entries: ``default_degrees``).
    Pure JAX (``jit`` with ``students`` static).
    """
    students = tuple(students)
    t = solve_teacher(mixture, teacher, config, throw=False)
    chain = [teacher_record(t.state, mixture)]
    out = []
    for k, spec in enumerate(students, start=1):
        deg = None if degrees is None else degrees[k - 1]
        res = solve_generation(tuple(chain), students[:k - 1], mixture, teacher, spec, config, deg)
        chain.append(res.record)
        out.append(res)
    return t, out


_solve_chain_jit = jax.jit(solve_chain_core, static_argnames=("config", "degrees"))


def solve_chain(mixture: Mixture, teacher: Teacher, students, config: SolverConfig = SolverConfig(), degrees=None):
    """``solve_chain_core`` compiled once per chain structure (``students``' data modes, depth,
    ``config`` and ``degrees`` are static); no checks."""
    if degrees is not None:
        degrees = tuple(None if d is None else tuple(int(n) for n in d) for d in degrees)
    return _solve_chain_jit(mixture, teacher, tuple(students), config, degrees)
