"""Finite-N experiments of exactly the docs/model.md objectives: the ground truth of the theory.

Per seed, all seeds in one ``jit(vmap)`` call: draw the cluster direction ``v`` and the training
set, train the teacher, build the soft labels, train the student, measure on ``n_test`` fresh
test inputs.  Everything follows the caller's float dtype (no global JAX configuration).
Seed ``s`` uses ``jax.random.PRNGKey(s)``; ``simulate_student``'s teacher is the one
``simulate_teacher`` returns for the same seed.  A test input enters only through its label and
the Gaussian pair ``(w_t.z, w_s.z_S)/sqrt(N)``, which is drawn from its exact joint law given the
trained weights (identical in distribution to drawing ``z``, at 2 normals instead of N per input).
``simulate_chain`` trains generations 1..K of a distillation chain the same way (generation k's
soft labels from generation k-1, its own ``_fit_student`` solve); the test inputs' Gaussian parts
of all K+1 generations are drawn jointly (K+1 normals per input), and a one-generation chain is
``simulate_student`` with the same random numbers.

Minimisation, all from ``theta = (w, b) = 0``:

- logistic, square and the KD student (``_newton``): full-batch damped Newton with the exact
  ``(d+1) x (d+1)`` Hessian (Cholesky with a relative shift ``1e-12 tr H / (d+1)``, which keeps
  singular cases such as ``lam = 0`` with fewer samples than weights solvable: from 0 the iterates
  stay in the row space, i.e. reach the minimum-norm minimiser up to round-off amplified by the
  shift, ~1e-5 relative) and Armijo backtracking over ``t = 2^-j`` (all trial points at
  once, ``O(n)`` each since ``h`` is linear in ``theta``).  Converged when the max-abs gradient
  of the full objective (bias included) is ``<= tol * n``, ``n`` the number of samples of that
  objective, ``tol = 1e-12`` in float64 (``100 eps`` in lower precision).  Square loss is
  quadratic: one Newton step is its closed form.
- hinge (``_hinge_ipm``): exact primal-dual interior-point method (Mehrotra) on the QP
  ``min lam/2 |w|^2 + sum xi, xi_i >= 1 - y_i h_i, xi >= 0``; same reduced Hessian structure,
  ~15 iterations.  Converged when the complementarity ``mu`` and the primal residual are
  ``<= 100 tol`` and the last change of ``theta`` is ``<= 1e4 tol max(1, |theta|_inf)`` (the
  rate is ~1e-2 per iteration at the end, so ``theta`` is exact to ~``100 tol``).  Its
  ``grad_norm`` is the stationarity residual ``max |P theta - A^T (y alpha)|`` with the dual
  multipliers ``alpha`` in [0, 1] (a subgradient certificate); its float64 floor, 1e-10 to 1e-6
  growing with N, is set by the ill-determined multipliers of margin support vectors, not by
  ``theta``, so it is reported but not part of the convergence test.

No finite minimiser (docs/model.md): with ``lam = 0`` the solve stops as soon as the iterate puts every
training sample on the side where its loss falls to its infimum along ``theta -> c theta``
(``y h > 0`` for logistic and hinge; for the student, the zero-slope side of
``a softplus(-y u) + (1 - a) T^2 CE(p, sigmoid(u / T))``, which only a hard label ``a = 1`` has
when ``0 < p < 1``).  Such a point proves the data separable and the infimum unattained:
``finite_minimiser`` and ``converged`` are then False.  A solve that exhausts ``max_steps`` or
whose line search stalls is ``converged = False`` too.

Results hold per-seed arrays of shape ``(n_seeds,)``.  ``.mean()`` / ``.sem()`` return an object
of the same class with numpy-scalar leaves (booleans become fractions, e.g. of converged seeds);
by default they raise ``ValueError`` naming the failure when any seed did not converge
(``failed="drop"``: aggregate the converged seeds only; ``failed="keep"``: all seeds).
``.check()`` raises the same error and otherwise returns the object.
"""

from __future__ import annotations

import contextlib
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._compile import jit
from ._losses import KD
from ._observables import gen_error_unchecked
from ._params import Mixture, Student, Teacher, check_arguments, check_integer, check_range, describe

_LINE_SEARCH_STEPS = 60  # trial steps t = 2^-k, k < 60
_ARMIJO = 1e-4


# --------------------------------------------------------------------------- results


def _aggregate(obj, reducer, failed):
    if failed not in ("raise", "drop", "keep"):
        raise ValueError(f"failed must be 'raise', 'drop' or 'keep'; got {failed!r}")
    ok = np.asarray(obj.converged, dtype=bool)
    if failed == "raise" and not ok.all():
        raise ValueError(obj.failure_message())
    keep = ok if failed == "drop" else np.ones_like(ok)
    return jax.tree.map(lambda x: reducer(np.asarray(x, dtype=float)[keep]), obj)


def _mean(x):
    return np.mean(x) if x.size else np.nan


def _sem(x):
    return np.std(x, ddof=1) / math.sqrt(x.size) if x.size > 1 else np.nan


class _Aggregates(eqx.Module):
    def mean(self, failed: str = "raise"):
        """Mean over seeds, as the same class with scalar leaves (see module docstring)."""
        return _aggregate(self, _mean, failed)

    def sem(self, failed: str = "raise"):
        """Standard error of the mean over seeds (``std(ddof=1) / sqrt(n_seeds)``)."""
        return _aggregate(self, _sem, failed)

    def check(self):
        """Raise ``ValueError`` naming the failure unless every seed converged; return self."""
        if not np.asarray(self.converged, dtype=bool).all():
            raise ValueError(self.failure_message())
        return self

    @property
    def n_seeds(self) -> int:
        return int(np.shape(self.m)[0])


def _failures(label, converged, finite, lam_name):
    converged, finite = np.asarray(converged, bool), np.asarray(finite, bool)
    msgs, k = [], converged.size
    if (~finite).any():
        msgs.append(
            f"{label}: no finite minimiser in {(~finite).sum()} of {k} seeds "
            f"({lam_name} = 0 on linearly separable training data: the weight norm diverges)"
        )
    if (finite & ~converged).any():
        msgs.append(
            f"{label}: tolerance not reached (max_steps exhausted or line search stalled) in "
            f"{(finite & ~converged).sum()} of {k} seeds"
        )
    return msgs


class TeacherSimulation(_Aggregates):
    """Per-seed results of the teacher experiment (arrays of shape ``(n_seeds,)``).

    m = w.v/N, q = |w|^2/N, b; gen_error: docs/model.md formula at (m, q, b); test_error: empirical
    on ``n_test`` fresh inputs; train_error: fraction of sign mismatches on the training set;
    train_loss: per-sample loss without the penalty; grad_norm: max-abs gradient of the full
    objective at the returned point; converged; finite_minimiser; n_steps: Newton iterations.
    """

    m: jax.Array
    q: jax.Array
    b: jax.Array
    gen_error: jax.Array
    test_error: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    grad_norm: jax.Array
    converged: jax.Array
    finite_minimiser: jax.Array
    n_steps: jax.Array

    def failure_message(self) -> str:
        """One line naming why seeds failed (no finite minimiser / tolerance not reached)."""
        msgs = _failures("teacher", self.converged, self.finite_minimiser, "lam_t")
        return "; ".join(msgs) or "all seeds converged"


class StudentSimulation(_Aggregates):
    """Per-seed results of the distillation experiment (arrays of shape ``(n_seeds,)``).

    teacher: the TeacherSimulation of the same seeds (identical to ``simulate_teacher``'s);
    m = w_s.v_S/N, q = |w_s|^2/N, r = w_t,S.w_s/N, b: the student's order parameters (all over the
    full N); gen_error, test_error, train_error, train_loss (student objective per sample, no
    penalty), agreement: fraction of the ``n_test`` fresh inputs where sign h_s = sign h_t;
    grad_norm, n_steps, finite_minimiser: of the student's own solve; converged: the student's
    solve met the tolerance AND the teacher's did (soft labels of an unconverged teacher are
    meaningless).
    """

    teacher: TeacherSimulation
    m: jax.Array
    q: jax.Array
    r: jax.Array
    b: jax.Array
    gen_error: jax.Array
    test_error: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    agreement: jax.Array
    grad_norm: jax.Array
    converged: jax.Array
    finite_minimiser: jax.Array
    n_steps: jax.Array

    def failure_message(self) -> str:
        """One line naming why seeds failed (no finite minimiser / tolerance not reached)."""
        msgs = _failures("teacher", self.teacher.converged, self.teacher.finite_minimiser, "lam_t")
        own = np.asarray(self.converged) | ~np.asarray(self.teacher.converged)
        msgs += _failures("student", own, self.finite_minimiser, "lam_s (hard labels)")
        return "; ".join(msgs) or "all seeds converged"


class GenerationSimulation(_Aggregates):
    """Per-seed results of generation ``k >= 1`` of a distillation chain (arrays ``(n_seeds,)``).

    m = w_k.v_S/N, q = |w_k|^2/N, b; r = w_{k-1,S}.w_k/N (overlap with the previous generation,
    restricted to generation k's coordinates S), r_teacher = w_{0,S}.w_k/N (with the teacher);
    gen_error (docs/model.md formula), test_error, train_error (against the noisy labels generation k
    trained on), train_loss (its KD objective per sample, no penalty), agreement: fraction of the
    ``n_test`` fresh inputs where sign h_k = sign h_{k-1}; grad_norm, n_steps, finite_minimiser:
    of generation k's own solve; upstream_converged: the teacher and generations 1..k-1 all
    converged; converged: generation k's solve met the tolerance AND upstream_converged.
    """

    generation: int = eqx.field(static=True)
    m: jax.Array
    q: jax.Array
    r: jax.Array
    r_teacher: jax.Array
    b: jax.Array
    gen_error: jax.Array
    test_error: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    agreement: jax.Array
    grad_norm: jax.Array
    converged: jax.Array
    finite_minimiser: jax.Array
    upstream_converged: jax.Array
    n_steps: jax.Array

    def _own_failures(self):
        upstream = np.asarray(self.upstream_converged, bool)
        own = np.asarray(self.converged, bool) | ~upstream
        return _failures(f"generation {self.generation}", own, self.finite_minimiser,
                         f"lam of generation {self.generation} (hard labels)")

    def failure_message(self) -> str:
        """One line naming why seeds failed (here or in an earlier generation)."""
        msgs = self._own_failures()
        upstream = np.asarray(self.upstream_converged, bool)
        if (~upstream).any():
            msgs.append(f"generation {self.generation}: an earlier generation (or the teacher) "
                        f"failed in {(~upstream).sum()} of {upstream.size} seeds")
        return "; ".join(msgs) or "all seeds converged"


class ChainSimulation(_Aggregates):
    """Per-seed results of a distillation chain (docs/model.md, "Distillation chains").

    teacher: generation 0 (identical to ``simulate_teacher``'s for the same seeds);
    generations: one GenerationSimulation per student, generation k = 1..K at index k - 1.
    converged: every generation of the chain (and the teacher) converged.  ``.mean()``,
    ``.sem()`` and ``.check()`` act on the whole chain (``failed="drop"`` keeps the seeds whose
    whole chain converged).
    """

    teacher: TeacherSimulation
    generations: tuple

    @property
    def converged(self):
        return self.generations[-1].converged  # cumulative along the chain

    @property
    def depth(self) -> int:
        return len(self.generations)

    @property
    def n_seeds(self) -> int:
        return self.teacher.n_seeds

    def failure_message(self) -> str:
        """One line naming why seeds failed, generation by generation."""
        msgs = _failures("teacher", self.teacher.converged, self.teacher.finite_minimiser, "lam_t")
        for gen in self.generations:
            msgs += gen._own_failures()
        return "; ".join(msgs) or "all seeds converged"




# --------------------------------------------------------------------------- losses


def _objective(loss, labels):
    """Per-sample ``(value, d/dh, d^2/dh^2)`` and the recession test of ``loss`` (a ``kdjax.Loss``)
    with its ``labels``: the very loss objects of the theory."""

    def parts(h):
        return loss.value(h, *labels), loss.grad(h, *labels), loss.hess(h, *labels)

    def recession(h):
        # with lam = 0, every sample on its loss's zero-slope side proves there is no finite minimiser
        return jnp.all(loss.recedes(h, *labels))

    return parts, recession


def _kd_labels(y, h_t, student, dtype):
    T = jnp.asarray(student.temperature, dtype)
    return y, h_t / T, jnp.asarray(student.hard_weight, dtype), T


# --------------------------------------------------------------------------- solvers


def _cholesky_solver(hess, shift):
    """Cholesky of hess + shift * tr(hess)/d * I (the shift keeps singular cases solvable)."""
    d = hess.shape[0]
    scale = jnp.trace(hess) / d
    chol = jnp.linalg.cholesky(hess + shift * scale * jnp.eye(d, dtype=hess.dtype))

    def solve(rhs):
        x = jax.scipy.linalg.cho_solve((chol, True), rhs)
        return jnp.where(jnp.all(jnp.isfinite(x)), x, rhs / scale)  # gradient-step fallback

    return solve


def _newton(A, parts, recession, lam, *, tol, max_steps):
    """Minimise f = sum_i loss(A theta)_i + lam/2 |theta[:-1]|^2 (last column of A = bias).

    Damped Newton + Armijo backtracking from theta = 0; stops when max|grad f| <= tol * n, or
    when (lam = 0) the iterate is a recession direction (no finite minimiser).
    Returns (theta, grad_norm, converged, finite_minimiser, n_steps).
    """
    dtype = A.dtype
    n, d1 = A.shape
    lam = jnp.asarray(lam, dtype)
    pen = jnp.full((d1,), lam, dtype).at[-1].set(0)
    eps_mach = float(jnp.finfo(dtype).eps)
    shift = max(1e-12, 100 * eps_mach)
    ts = 0.5 ** jnp.arange(_LINE_SEARCH_STEPS, dtype=dtype)
    tol_abs = tol * max(n, 1)

    def evaluate(theta, k):
        h = A @ theta
        value, g1, g2 = parts(h)
        grad = A.T @ g1 + pen * theta
        separated = (lam == 0) & recession(h)
        stop = (jnp.max(jnp.abs(grad)) <= tol_abs) | separated | ~jnp.all(jnp.isfinite(grad))
        return theta, k, h, value, g2, grad, stop, separated

    def body(state):
        theta, k, h, value, g2, grad, _, _ = state
        p = -_cholesky_solver((A * g2[:, None]).T @ A + jnp.diag(pen), shift)(grad)
        # backtracking over t = 2^-j, all trial points at once (h is linear in theta)
        f0 = jnp.sum(value) + 0.5 * jnp.sum(pen * theta**2)
        trial_theta = theta[None, :] + ts[:, None] * p[None, :]
        trial = parts(h[None, :] + ts[:, None] * (A @ p)[None, :])[0].sum(axis=1)
        trial = trial + 0.5 * jnp.sum(pen * trial_theta**2, axis=1)
        slack = 10 * eps_mach * (jnp.sum(jnp.abs(value)) + 0.5 * jnp.sum(pen * theta**2))
        ok = trial <= f0 + _ARMIJO * ts * (grad @ p) + slack
        t = jnp.where(jnp.any(ok), ts[jnp.argmax(ok)], 0.0)
        new = evaluate(theta + t * p, k + 1)
        return new[:6] + (new[6] | (t == 0),) + new[7:]  # t == 0: line search stalled

    def cond(state):
        return ~state[6] & (state[1] < max_steps)

    state = evaluate(jnp.zeros(d1, dtype), jnp.zeros((), jnp.int32))
    theta, k, _, _, _, grad, _, diverged = jax.lax.while_loop(cond, body, state)
    gnorm = jnp.max(jnp.abs(grad))
    converged = (gnorm <= tol_abs) & ~diverged & jnp.all(jnp.isfinite(theta))
    return theta, gnorm, converged, ~diverged, k


def _hinge_ipm(A, y, lam, *, tol, max_steps):
    """Exact hinge ERM by a primal-dual interior-point method (Mehrotra predictor-corrector).

    QP: min lam/2 |w|^2 + sum xi  s.t.  y_i h_i + xi_i - 1 = s_i >= 0, xi_i >= 0, duals alpha
    (the SVM dual variables, in [0, 1]) and beta = 1 - alpha.  Each iteration solves the reduced
    (d+1) x (d+1) system P + A^T diag(D) A, D = 1 / (xi/beta + s/alpha), P = diag(lam, .., 0).
    With t = 100 tol, stops when mu = (s.alpha + xi.beta)/(2n) <= t, max|y h + xi - 1 - s| <= t
    and the last change of theta is <= 100 t max(1, |theta|_inf) (see the module docstring).
    Returns (theta, grad_norm, converged, finite_minimiser, n_steps).
    """
    dtype = A.dtype
    n, d1 = A.shape
    lam = jnp.asarray(lam, dtype)
    pen = jnp.full((d1,), lam, dtype).at[-1].set(0)
    shift = max(1e-14, 100 * float(jnp.finfo(dtype).eps))
    tol = 100 * tol

    def residuals(theta, xi, s, alpha, beta):
        h = A @ theta
        r_d = pen * theta - A.T @ (y * alpha)
        r_x = 1 - alpha - beta
        r_p = y * h + xi - 1 - s
        mu = (s @ alpha + xi @ beta) / (2 * n)
        return h, r_d, r_x, r_p, mu

    def max_step(x, dx):
        neg = dx < 0
        return jnp.min(jnp.where(neg, -x / jnp.where(neg, dx, -1), jnp.inf), initial=1.0)

    def body(state):
        (theta, xi, s, alpha, beta), k, _, _, _ = state
        h, r_d, r_x, r_p, mu = residuals(theta, xi, s, alpha, beta)
        D = 1 / (xi / beta + s / alpha)
        solve_h = _cholesky_solver((A * D[:, None]).T @ A + jnp.diag(pen), shift)

        def direction(r_sa, r_xb):
            rho = -r_p + (r_xb + xi * r_x) / beta - r_sa / alpha
            dth = solve_h(-r_d + A.T @ (y * D * rho))
            dal = D * (rho - y * (A @ dth))
            dbe = r_x - dal
            return dth, (-r_xb - xi * dbe) / beta, (-r_sa - s * dal) / alpha, dal, dbe

        def step_length(d):
            _, dxi, ds, dal, dbe = d
            return jnp.minimum(jnp.minimum(max_step(xi, dxi), max_step(s, ds)),
                               jnp.minimum(max_step(alpha, dal), max_step(beta, dbe)))

        aff = direction(s * alpha, xi * beta)
        a = step_length(aff)
        _, dxi, ds, dal, dbe = aff
        mu_aff = ((s + a * ds) @ (alpha + a * dal) + (xi + a * dxi) @ (beta + a * dbe)) / (2 * n)
        sigma = (mu_aff / mu) ** 3
        d = direction(s * alpha + ds * dal - sigma * mu, xi * beta + dxi * dbe - sigma * mu)
        a = jnp.minimum(1.0, 0.99 * step_length(d))
        new = tuple(x + a * dx for x, dx in zip((theta, xi, s, alpha, beta), d))
        move = jnp.max(jnp.abs(new[0] - theta))
        separated = (lam == 0) & jnp.all(y * (A @ new[0]) > 0)
        _, _, _, r_p_new, mu_new = residuals(*new)
        done = ((mu_new <= tol) & (jnp.max(jnp.abs(r_p_new)) <= tol)
                & (move <= 100 * tol * jnp.maximum(1.0, jnp.max(jnp.abs(new[0])))))
        ok = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in new]))
        new = jax.tree.map(lambda x, old: jnp.where(ok, x, old), new, (theta, xi, s, alpha, beta))
        return new, k + 1, done | separated | ~ok, done & ok, separated

    def cond(state):
        return ~state[2] & (state[1] < max_steps)

    ones = jnp.ones(n, dtype)
    primal_dual = (jnp.zeros(d1, dtype), ones, ones, 0.5 * ones, 0.5 * ones)
    state = (primal_dual, jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.zeros((), bool),
             jnp.zeros((), bool))
    primal_dual, k, _, done, diverged = jax.lax.while_loop(cond, body, state)
    theta = primal_dual[0]
    gnorm = jnp.max(jnp.abs(residuals(*primal_dual)[1]))
    return theta, gnorm, done & ~diverged, ~diverged, k


# --------------------------------------------------------------------------- experiment


def _sample(key, v, n, rho, delta, eta):
    """n samples x = y v / sqrt(N) + sqrt(delta) z with P(y = +1) = rho, and their observed labels:
    y flipped with probability eta (docs/model.md, "Label noise").  Returns (x, y_obs)."""
    k_y, k_z = jax.random.split(key)
    N, dtype = v.shape[0], v.dtype
    y = jnp.where(jax.random.uniform(k_y, (n,), dtype) < rho, 1.0, -1.0).astype(dtype)
    z = jax.random.normal(k_z, (n, N), dtype)
    flip = jax.random.uniform(jax.random.fold_in(k_y, 1), (n,), dtype) < eta
    y_obs = jnp.where(flip, -y, y)
    return y[:, None] * v[None, :] / math.sqrt(N) + jnp.sqrt(delta) * z, y_obs


def _draw(key, mixture, N, n, dtype):
    """One seed's cluster direction v and training set (x: (n, N), y: (n,))."""
    names = ("v", "train", "fresh", "test")
    keys = {name: jax.random.fold_in(key, i) for i, name in enumerate(names)}
    rho = jnp.asarray(mixture.rho, dtype)
    delta = jnp.asarray(mixture.delta, dtype)
    v = jax.random.normal(keys["v"], (N,), dtype)
    eta = jnp.asarray(mixture.label_noise, dtype)
    x, y = _sample(keys["train"], v, n, rho, delta, eta)
    return dict(keys=keys, v=v, x=x, y=y, rho=rho, delta=delta, eta=eta)


def _design(x, d):
    """A = [x[:, :d] / sqrt(N), 1] with N = x.shape[1], so that h = A (w, b)."""
    N = x.shape[1]
    return jnp.concatenate([x[:, :d] / math.sqrt(N), jnp.ones((x.shape[0], 1), x.dtype)], axis=1)


def _fit_teacher(x, y, teacher, *, tol, max_steps):
    """Teacher ERM on (x, y); returns (theta = (w, b), grad_norm, converged, finite, n_steps)."""
    A = _design(x, x.shape[1])
    if teacher.loss.minimiser == "interior_point":  # the hinge loss's QP
        return _hinge_ipm(A, y, teacher.lam, tol=tol, max_steps=max_steps)
    parts, recession = _objective(teacher.loss, (y,))
    return _newton(A, parts, recession, teacher.lam, tol=tol, max_steps=max_steps)


def _fit_student(x, y, h_t, student, N_s, *, tol, max_steps):
    """KD student on the first N_s coordinates of x, soft labels sigmoid(h_t / T)."""
    parts, recession = _objective(KD, _kd_labels(y, h_t, student, x.dtype))
    return _newton(_design(x, N_s), parts, recession, student.lam, tol=tol, max_steps=max_steps)


def _test_set(key, n_test, rho, dtype):
    """Labels and standard normals for the n_test fresh test inputs.

    A test input x = y v/sqrt(N) + sqrt(delta) z enters only through y and the Gaussian vector
    (w_t.z, w_s.z_S)/sqrt(N) ~ N(0, [[q_t, r], [r, q_s]]); drawing that pair from its exact law
    is identical in distribution to drawing z (and costs 2 normals instead of N per input).
    """
    k_y, k_g = jax.random.split(key)
    y = jnp.where(jax.random.uniform(k_y, (n_test,), dtype) < rho, 1.0, -1.0).astype(dtype)
    return y, jax.random.normal(k_g, (n_test, 2), dtype)


def _error(h, y):
    return jnp.mean((jnp.sign(h) != y).astype(h.dtype))


def _teacher_run(key, mixture, teacher, N, n, tol, max_steps, dtype):
    ctx = _draw(key, mixture, N, n, dtype)
    v, x, y, rho, delta = ctx["v"], ctx["x"], ctx["y"], ctx["rho"], ctx["delta"]
    theta, gnorm, converged, finite, k = _fit_teacher(x, y, teacher, tol=tol, max_steps=max_steps)
    w, b = theta[:-1], theta[-1]
    h = x @ w / math.sqrt(N) + b
    m, q = w @ v / N, w @ w / N
    fields = dict(
        m=m, q=q, b=b, gen_error=gen_error_unchecked(m, q, b, delta, rho), train_error=_error(h, y),
        train_loss=jnp.mean(teacher.loss.value(h, y)), grad_norm=gnorm, converged=converged,
        finite_minimiser=finite, n_steps=k,
    )
    ctx.update(h=h, w=w, b=b, m=m, q=q)
    return fields, ctx


@jit(static_argnames=("N", "n", "n_test", "tol", "max_steps", "dtype"))
def _teacher_batch(keys, mixture, teacher, *, N, n, n_test, tol, max_steps, dtype):
    def one(key):
        fields, ctx = _teacher_run(key, mixture, teacher, N, n, tol, max_steps, dtype)
        y, xi = _test_set(ctx["keys"]["test"], n_test, ctx["rho"], dtype)
        h_t = y * ctx["m"] + ctx["b"] + jnp.sqrt(ctx["delta"] * ctx["q"]) * xi[:, 0]
        return TeacherSimulation(test_error=_error(h_t, y), **fields)

    return jax.vmap(one)(keys)


@jit(
    static_argnames=("N", "n", "N_s", "n_s", "n_test", "tol", "max_steps", "dtype")
)
def _student_batch(
    keys, mixture, teacher, student, *, N, n, N_s, n_s, n_test, tol, max_steps, dtype
):
    def one(key):
        t_fields, ctx = _teacher_run(key, mixture, teacher, N, n, tol, max_steps, dtype)
        v, delta, w_t, b_t = ctx["v"], ctx["delta"], ctx["w"], ctx["b"]
        if student.data == "same":
            x, y, h_t = ctx["x"], ctx["y"], ctx["h"]
        else:
            x, y = _sample(ctx["keys"]["fresh"], v, n_s, ctx["rho"], delta, ctx["eta"])
            h_t = x @ w_t / math.sqrt(N) + b_t
        theta, gnorm, converged, finite, k = _fit_student(
            x, y, h_t, student, N_s, tol=tol, max_steps=max_steps
        )
        w, b = theta[:-1], theta[-1]
        h = x[:, :N_s] @ w / math.sqrt(N) + b
        m, q, r = w @ v[:N_s] / N, w @ w / N, w_t[:N_s] @ w / N

        y_test, xi = _test_set(ctx["keys"]["test"], n_test, ctx["rho"], dtype)
        q_t = ctx["q"]
        c = jnp.where(q_t > 0, r / jnp.sqrt(jnp.where(q_t > 0, q_t, 1.0)), 0.0)
        g_s = c * xi[:, 0] + jnp.sqrt(jnp.maximum(q - c**2, 0.0)) * xi[:, 1]
        h_t_test = y_test * ctx["m"] + b_t + jnp.sqrt(delta * q_t) * xi[:, 0]  # as _teacher_batch
        h_s_test = y_test * m + b + jnp.sqrt(delta) * g_s
        agreement = jnp.mean((jnp.sign(h_s_test) == jnp.sign(h_t_test)).astype(dtype))
        return StudentSimulation(
            teacher=TeacherSimulation(test_error=_error(h_t_test, y_test), **t_fields),
            m=m, q=q, r=r, b=b, gen_error=gen_error_unchecked(m, q, b, delta, ctx["rho"]),
            test_error=_error(h_s_test, y_test), train_error=_error(h, y),
            train_loss=jnp.mean(KD.value(h, *_kd_labels(y, h_t, student, dtype))), agreement=agreement, grad_norm=gnorm,
            converged=converged & t_fields["converged"], finite_minimiser=finite, n_steps=k,
        )

    return jax.vmap(one)(keys)


def _generation_data(ctx, k, student, n_k):
    """Training set (x, y_obs) of generation k >= 1 of a chain.

    "same": the teacher's inputs and noisy labels (the very flips of the teacher's set);
    "fresh": n_k new inputs of the same mixture (same v), labels flipped afresh.  Generation 1
    draws from the key ``simulate_student`` uses, generation k > 1 from ``fold_in(that, k)``.
    """
    if student.data == "same":
        return ctx["x"], ctx["y"]
    key = ctx["keys"]["fresh"] if k == 1 else jax.random.fold_in(ctx["keys"]["fresh"], k)
    return _sample(key, ctx["v"], n_k, ctx["rho"], ctx["delta"], ctx["eta"])


def _chain_test_set(key, n_test, rho, depth, dtype):
    """Labels and (n_test, depth + 1) standard normals: the first two columns are those of
    ``_test_set`` (so that a one-generation chain is ``simulate_student``), column j >= 2 is
    drawn from ``fold_in(key, j)``."""
    y, xi = _test_set(key, n_test, rho, dtype)
    extra = [jax.random.normal(jax.random.fold_in(key, j), (n_test,), dtype)
             for j in range(2, depth + 1)]
    return y, jnp.concatenate([xi] + [e[:, None] for e in extra], axis=1)


def _test_fields(cov, xi):
    """Gaussian parts g (n_test, K+1) with covariance ``cov`` from standard normals ``xi``.

    g_j = (w_j . z_{S_j}) / sqrt(N) of a test input for generation j: cov_jk = w_j,S . w_k,S / N on
    the common coordinates.  Cholesky row by row, a zero pivot (e.g. a generation that copies its
    predecessor) giving a zero column; for two generations this is exactly ``_student_batch``'s
    pair (c xi_0 + sqrt(q - c^2) xi_1 with c = r / sqrt(q_t)).
    """
    K1 = cov.shape[0]
    L = [[None] * K1 for _ in range(K1)]
    for k in range(K1):
        for j in range(k):
            s = cov[k, j]
            for i in range(j):
                s = s - L[k][i] * L[j][i]
            L[k][j] = jnp.where(L[j][j] > 0, s / jnp.where(L[j][j] > 0, L[j][j], 1.0), 0.0)
        d = cov[k, k]
        for i in range(k):
            d = d - L[k][i] ** 2
        L[k][k] = jnp.sqrt(jnp.maximum(d, 0.0))
    g = []
    for k in range(K1):
        gk = L[k][0] * xi[:, 0]
        for j in range(1, k + 1):
            gk = gk + L[k][j] * xi[:, j]
        g.append(gk)
    return g


@jit(
    static_argnames=("N", "n", "dims", "sizes", "n_test", "tol", "max_steps", "dtype")
)
def _chain_batch(
    keys, mixture, teacher, students, *, N, n, dims, sizes, n_test, tol, max_steps, dtype
):
    def one(key):
        t_fields, ctx = _teacher_run(key, mixture, teacher, N, n, tol, max_steps, dtype)
        v, delta, rho = ctx["v"], ctx["delta"], ctx["rho"]
        ws, bs, Ns = [ctx["w"]], [ctx["b"]], [N]  # generation 0 = the teacher
        upstream = t_fields["converged"]
        gens = []
        for k, (student, N_k, n_k) in enumerate(zip(students, dims, sizes), start=1):
            x, y = _generation_data(ctx, k, student, n_k)
            w_p, b_p, N_p = ws[-1], bs[-1], Ns[-1]
            h_p = ctx["h"] if (k == 1 and student.data == "same") else (
                x[:, :N_p] @ w_p / math.sqrt(N) + b_p)
            theta, gnorm, converged, finite, steps = _fit_student(
                x, y, h_p, student, N_k, tol=tol, max_steps=max_steps
            )
            w, b = theta[:-1], theta[-1]
            h = x[:, :N_k] @ w / math.sqrt(N) + b
            m, q = w @ v[:N_k] / N, w @ w / N
            gens.append(dict(
                m=m, q=q, r=w_p[:N_k] @ w / N, r_teacher=ws[0][:N_k] @ w / N, b=b,
                gen_error=gen_error_unchecked(m, q, b, delta, rho), train_error=_error(h, y),
                train_loss=jnp.mean(KD.value(h, *_kd_labels(y, h_p, student, dtype))),
                grad_norm=gnorm, converged=converged & upstream, finite_minimiser=finite,
                upstream_converged=upstream, n_steps=steps,
            ))
            upstream = upstream & converged
            ws.append(w), bs.append(b), Ns.append(N_k)

        # test inputs: labels and the jointly Gaussian parts of all generations' pre-activations
        depth = len(students)
        y_test, xi = _chain_test_set(ctx["keys"]["test"], n_test, rho, depth, dtype)
        cov = jnp.stack([jnp.stack([ws[j][:min(Ns[j], Ns[k])] @ ws[k][:min(Ns[j], Ns[k])] / N
                                    for k in range(depth + 1)]) for j in range(depth + 1)])
        cov = cov.at[0, 0].set(ctx["q"])
        g = _test_fields(cov, xi)
        ms = [ctx["m"]] + [gen["m"] for gen in gens]
        h_test = [y_test * ctx["m"] + bs[0] + jnp.sqrt(delta * ctx["q"]) * xi[:, 0]]  # as above
        h_test += [y_test * ms[k] + bs[k] + jnp.sqrt(delta) * g[k] for k in range(1, depth + 1)]
        generations = tuple(
            GenerationSimulation(
                generation=k, test_error=_error(h_test[k], y_test),
                agreement=jnp.mean((jnp.sign(h_test[k]) == jnp.sign(h_test[k - 1])).astype(dtype)),
                **gens[k - 1],
            )
            for k in range(1, depth + 1)
        )
        teacher_sim = TeacherSimulation(test_error=_error(h_test[0], y_test), **t_fields)
        return ChainSimulation(teacher=teacher_sim, generations=generations)

    return jax.vmap(one)(keys)


# --------------------------------------------------------------------------- public API


def _single_threaded_blas():
    """Limit OpenBLAS to one thread while a simulation runs (when threadpoolctl is installed).

    XLA:CPU calls LAPACK (Cholesky, triangular solves) from its own worker threads; a
    multi-threaded OpenBLAS inside them oversubscribes the cores (5-10x slower, measured on
    2 cores).  Process-wide for the duration of the call only; JAX configuration is untouched.
    """
    if jax.default_backend() != "cpu":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _seed_keys(seeds):
    """PRNG keys of ``seeds``: a count (``0 .. count-1``) or a sequence of ints in [0, 2**32)."""
    if isinstance(seeds, (np.ndarray, jax.Array)):
        seeds = np.asarray(seeds).tolist()  # numpy types: ints stay ints, floats and bools do not
    if isinstance(seeds, (int, np.integer)):  # booleans included: check_integer rejects them
        seeds = range(check_integer("seeds", seeds, 1))
    elif isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a count or a sequence of ints in [0, 2**32), "
                         f"got {describe(seeds)}")
    seeds = [check_integer("seeds", s, 0) for s in seeds]
    if not seeds or max(seeds) >= 2**32:
        raise ValueError(f"seeds must be a non-empty sequence of ints in [0, 2**32), "
                         f"got {describe(seeds)}")
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, dtype=jnp.uint32))


def _count(name, value, N):
    n = int(round(float(value) * N))
    if n < 1:
        raise ValueError(
            f"{name} * n_features must round to at least 1, got {float(value):g} * {N}"
        )
    return n


def _settings(n_features, n_test, tol, max_steps, **arguments):
    """Checked settings; ``arguments`` maps a name to ``(value, class)`` (scalar parameters)."""
    check_arguments(**arguments)
    dtype = jnp.dtype(jnp.result_type(float))
    if tol is None:
        tol = max(1e-12, 100 * float(jnp.finfo(dtype).eps))
    check_range("tol", tol, 0.0, 1.0)
    if np.ndim(tol) or isinstance(tol, jax.core.Tracer):
        raise ValueError(f"tol must be a single number, got {describe(tol)}")
    return (check_integer("n_features", n_features, 1), check_integer("n_test", n_test, 1),
            float(tol), check_integer("max_steps", max_steps, 1), dtype)


def simulate_teacher(
    mixture: Mixture,
    teacher: Teacher,
    *,
    n_features: int,
    seeds=10,
    n_test: int = 20000,
    tol: float | None = None,
    max_steps: int = 200,
) -> TeacherSimulation:
    """Train the docs/model.md teacher at dimension ``N = n_features`` for each seed.

    seeds: a count (seeds 0..count-1) or a sequence of ints in [0, 2**32); n = round(alpha N)
    training samples; n_test: fresh test inputs per seed; tol: relative tolerance (max-abs
    gradient <= tol * n; default 1e-12 in float64, 100 eps otherwise); max_steps: Newton /
    interior-point iteration budget.  Returns per-seed TeacherSimulation arrays (see
    ``converged`` / ``finite_minimiser`` before using the numbers; ``.check()`` raises).
    """
    N, n_test, tol, max_steps, dtype = _settings(
        n_features, n_test, tol, max_steps, mixture=(mixture, Mixture), teacher=(teacher, Teacher)
    )
    n = _count("alpha", mixture.alpha, N)
    with _single_threaded_blas():
        return jax.block_until_ready(_teacher_batch(
            _seed_keys(seeds), mixture, teacher, N=N, n=n, n_test=n_test, tol=tol,
            max_steps=max_steps, dtype=dtype,
        ))


def simulate_student(
    mixture: Mixture,
    teacher: Teacher,
    student: Student,
    *,
    n_features: int,
    seeds=10,
    n_test: int = 20000,
    tol: float | None = None,
    max_steps: int = 200,
) -> StudentSimulation:
    """Train teacher then KD student (docs/model.md) at dimension ``N = n_features`` for each seed.

    The student sees the first N_s = round(gamma N) coordinates; data "same" reuses the teacher's
    n training inputs, "fresh" draws n_s = round(alpha_s N) new ones (same v).  Teacher, student
    and agreement are measured on the same n_test fresh inputs; the teacher is identical to
    ``simulate_teacher`` with the same seeds.  Other arguments as in ``simulate_teacher``.
    """
    N, n_test, tol, max_steps, dtype = _settings(
        n_features, n_test, tol, max_steps,
        mixture=(mixture, Mixture), teacher=(teacher, Teacher), student=(student, Student),
    )
    n = _count("alpha", mixture.alpha, N)
    N_s = _count("gamma", student.gamma, N)
    n_s = _count("alpha_s", student.alpha, N) if student.data == "fresh" else n
    with _single_threaded_blas():
        return jax.block_until_ready(_student_batch(
            _seed_keys(seeds), mixture, teacher, student, N=N, n=n, N_s=N_s, n_s=n_s,
            n_test=n_test, tol=tol, max_steps=max_steps, dtype=dtype,
        ))


def simulate_chain(
    mixture: Mixture,
    teacher: Teacher,
    students,
    *,
    n_features: int,
    seeds=10,
    n_test: int = 20000,
    tol: float | None = None,
    max_steps: int = 200,
) -> ChainSimulation:
    """Train a distillation chain (docs/model.md) at dimension ``N = n_features`` for each seed.

    Generation 0 is the teacher; ``students`` (a non-empty sequence of ``Student``) are
    generations 1..K, generation k distilled from generation k-1 (soft labels
    ``sigmoid(h_{k-1}(x) / T_k)``) on its first N_k = round(gamma_k N) coordinates, gamma
    non-increasing along the chain.  Data "same": the teacher's n inputs and noisy labels;
    "fresh": round(alpha_k N) new inputs (same v, labels flipped afresh), on which generation
    k-1 is evaluated.  All generations are measured on the same n_test fresh test inputs (their
    Gaussian parts drawn jointly from the exact covariance given the trained weights).  A
    one-generation chain gives ``simulate_student``'s numbers; the teacher is
    ``simulate_teacher``'s.  Other arguments as in ``simulate_teacher``.
    """
    if isinstance(students, Student) or not hasattr(students, "__iter__"):
        raise ValueError(f"students must be a non-empty sequence of Student, "
                         f"got {describe(students)}")
    students = tuple(students)
    if not students:
        raise ValueError("students must be a non-empty sequence of Student, got an empty one")
    N, n_test, tol, max_steps, dtype = _settings(
        n_features, n_test, tol, max_steps, mixture=(mixture, Mixture), teacher=(teacher, Teacher),
        **{f"generation {k}": (s, Student) for k, s in enumerate(students, start=1)},
    )
    for k in range(2, len(students) + 1):
        g_prev, g_k = float(students[k - 2].gamma), float(students[k - 1].gamma)
        if g_k > g_prev:
            raise ValueError(f"gamma of generation {k} ({g_k:g}) must not exceed that of "
                             f"generation {k - 1} ({g_prev:g})")
    n = _count("alpha", mixture.alpha, N)
    dims = tuple(_count(f"gamma of generation {k}", s.gamma, N)
                 for k, s in enumerate(students, start=1))
    sizes = tuple(_count(f"alpha of generation {k}", s.alpha, N) if s.data == "fresh" else n
                  for k, s in enumerate(students, start=1))
    with _single_threaded_blas():
        return jax.block_until_ready(_chain_batch(
            _seed_keys(seeds), mixture, teacher, students, N=N, n=n, dims=dims, sizes=sizes,
            n_test=n_test, tol=tol, max_steps=max_steps, dtype=dtype,
        ))


__all__ = [
    "simulate_teacher", "simulate_student", "simulate_chain",
    "TeacherSimulation", "StudentSimulation", "ChainSimulation", "GenerationSimulation",
]
