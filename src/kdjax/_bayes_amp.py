"""Finite-N ground truth of the Bayes-optimal baseline with label noise (docs/bayes.md, Sec. 5).

Bayes-AMP for the rank-one model ``X = y v^T / sqrt(N) + sqrt(delta) Z`` (rows: the ``n``
training inputs) with a Gaussian prior on ``v`` and, for every sample, the prior
``P(y_i | y~_i)`` of its clean label given its observed (noisy) label.  Its fixed point is the
posterior mean of ``v`` (to leading order in ``N``); the Bayes classifier of a clean test input
is then ``sign(v_hat . x / sqrt(N) + b)``, ``b = (delta / 2) log(rho / (1 - rho))`` (Eq. 4.3),
whose test error given ``v`` and ``v_hat`` is exact (the test noise is Gaussian).
``bayes_gibbs`` samples the posterior instead (block Gibbs from the planted point): it checks that
AMP finds the posterior mean and that the exact Bayes decision is the linear rule.  Plain numpy:
independent of the JAX state evolution it checks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

__all__ = ["BayesAMPRun", "BayesGibbsRun", "sample_noisy_mixture", "bayes_amp", "bayes_amp_error",
           "bayes_gibbs"]


class BayesAMPRun(NamedTuple):
    """One AMP run: test error of the Bayes classifier (clean test labels), its overlaps
    ``m = v_hat . v / N``, ``q = |v_hat|^2 / N``, the overlap ``label_overlap = y_hat . y / n`` of
    the training labels' posterior mean, the iterations used and the last change of ``v_hat``;
    ``clean_gen_error``: the test error of the exact Bayes classifier of the same training inputs
    with their clean labels (a control variate: the difference ``gen_error - clean_gen_error``
    is free of the sample-to-sample fluctuations the two share, e.g. of ``|v|^2 / N``)."""

    gen_error: float
    m: float
    q: float
    b: float
    label_overlap: float
    iterations: int
    change: float
    clean_gen_error: float


def sample_noisy_mixture(N: int, alpha: float, delta: float, rho: float, eta: float, rng):
    """``(x, y, y_obs, v)``: ``n = round(alpha N)`` inputs of the mixture (MODEL.md), their clean
    labels, the observed labels (each flipped with probability ``eta``) and the cluster direction."""
    n = int(round(alpha * N))
    v = rng.standard_normal(N)
    y = np.where(rng.random(n) < rho, 1.0, -1.0)
    y_obs = np.where(rng.random(n) < eta, -y, y)
    x = y[:, None] * v / np.sqrt(N) + np.sqrt(delta) * rng.standard_normal((n, N))
    return x, y, y_obs, v


def _label_log_odds(y_obs, rho, eta):
    """``h0 = (1/2) log(P(y = 1 | y~) / P(y = -1 | y~))`` (Eq. 3.1); +-inf for clean labels."""
    with np.errstate(divide="ignore"):
        keep, flip = np.log1p(-eta), np.log(eta)
        up = np.log(rho) + np.where(y_obs > 0, keep, flip)
        down = np.log1p(-rho) + np.where(y_obs > 0, flip, keep)
    return 0.5 * (up - down)


def bayes_amp(x, y_obs, delta: float, rho: float, eta: float, *, max_iter: int = 200,
              tol: float = 1e-9, damping: float = 1.0):
    """Bayes-AMP estimates ``(v_hat, y_hat, iterations, change)`` of the posterior means.

    Sequential updates (Onsager terms for the rank-one ``u v^T`` model; ``n = alpha N``):

        B_y = X v_hat / (sqrt(N) delta) - (sum_k s_v,k / (N delta)) y_hat_old,
        y_hat = tanh(B_y + h0(y~)),  s_y = 1 - y_hat^2,
        B_v = X^T y_hat / (sqrt(N) delta) - (sum_i s_y,i / (N delta)) v_hat,
        A_v = |y_hat|^2 / (N delta),  v_hat = B_v / (1 + A_v),  s_v = 1 / (1 + A_v).

    Started from the labels alone (``y_hat = E[y | y~]``, ``v_hat = 0``).
    """
    N = x.shape[1]
    sqrt_n = np.sqrt(N)
    h0 = _label_log_odds(y_obs, rho, eta)
    y_hat = np.tanh(h0)
    v_hat = np.zeros(N)
    s_v_sum = 0.0
    change = np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        # v side from the current label estimates (the Onsager term uses the v_hat they came from)
        s_y = 1.0 - y_hat**2
        b_v = x.T @ y_hat / (sqrt_n * delta) - (s_y.sum() / (N * delta)) * v_hat
        a_v = y_hat @ y_hat / (N * delta)
        v_new = b_v / (1.0 + a_v)
        s_v_sum = N / (1.0 + a_v)
        v_new = damping * v_new + (1.0 - damping) * v_hat
        change = np.linalg.norm(v_new - v_hat) / max(np.linalg.norm(v_new), 1e-300)
        v_hat = v_new
        # label side from v_hat (the Onsager term uses the y_hat v_hat came from)
        b_y = x @ v_hat / (sqrt_n * delta) - (s_v_sum / (N * delta)) * y_hat
        y_hat = np.tanh(b_y + h0)
        if change < tol:
            break
    return v_hat, y_hat, it, change


def bayes_amp_error(N: int, alpha: float, delta: float, rho: float, eta: float, seed: int,
                    **amp_options) -> BayesAMPRun:
    """Sample one training set (MODEL.md, with label noise ``eta``), run :func:`bayes_amp` and
    return the exact test error of ``sign(v_hat . x / sqrt(N) + b)`` against clean test labels."""
    rng = np.random.default_rng(seed)
    x, y, y_obs, v = sample_noisy_mixture(N, alpha, delta, rho, eta, rng)
    v_hat, y_hat, it, change = bayes_amp(x, y_obs, delta, rho, eta, **amp_options)
    b = 0.5 * delta * np.log(rho / (1.0 - rho))  # (4.3)

    def error(w):  # h | y ~ N(y m + b, delta q) given v and w: exact
        m, q = w @ v / N, w @ w / N
        scale = np.sqrt(delta * q)
        return m, q, rho * ndtr(-(m + b) / scale) + (1.0 - rho) * ndtr(-(m - b) / scale)

    m, q, err = error(v_hat)
    v_clean = x.T @ y / (np.sqrt(N) * (len(y) / N + delta))  # posterior mean, clean labels (2.2)
    clean = error(v_clean)[2]
    return BayesAMPRun(float(err), float(m), float(q), float(b), float(y_hat @ y / len(y)), it,
                       float(change), float(clean))


class BayesGibbsRun(NamedTuple):
    """One posterior-sampling run (:func:`bayes_gibbs`).

    ``gen_error``: exact test error of ``sign(v_bar . x / sqrt(N) + b)``, ``v_bar`` the average of
    the sampled ``v`` (the posterior mean up to Monte-Carlo error; ``m = v_bar . v / N``);
    ``amp_gen_error``: the same for the AMP estimate on the same sample; on ``n_test`` fresh test
    inputs, ``predictive_error`` of the exact Bayes decision from the sampled posterior predictive
    (no linearity assumed) and ``linear_error`` of the linear rule ``sign(v_bar . x / sqrt(N) + b)``,
    and ``disagreement``, the fraction of test inputs on which the two decide differently."""

    gen_error: float
    m: float
    amp_gen_error: float
    amp_m: float
    predictive_error: float
    linear_error: float
    disagreement: float


def bayes_gibbs(N: int, alpha: float, delta: float, rho: float, eta: float, seed: int, *,
                sweeps: int = 400, n_test: int = 20000) -> BayesGibbsRun:
    """Posterior sampling of (3.2) by block Gibbs, ``v | y`` (Gaussian, Eq. 2.1) and ``y | v``
    (independent labels, ``P(y_i | v) ∝ p_{y_i}(y~_i) exp(y_i x_i . v / (sqrt(N) delta))``), started at
    the planted ``(v, y)``, itself an exact posterior sample (Nishimori), so that no burn-in is
    needed.  Checks that AMP finds the posterior mean and that the Bayes decision of a clean test
    label (the sampled posterior predictive, Eq. 4.1) is the linear rule of Eqs. 4.2-4.3.
    """
    rng = np.random.default_rng(seed)
    x, y, y_obs, v = sample_noisy_mixture(N, alpha, delta, rho, eta, rng)
    n = len(y)
    a = n / N
    h0 = _label_log_odds(y_obs, rho, eta)
    scale = np.sqrt(delta / (a + delta))
    lab = y.copy()
    samples = np.empty((sweeps, N))
    for s in range(sweeps):
        mean = x.T @ lab / (np.sqrt(N) * (a + delta))  # (2.2)
        w = mean + scale * rng.standard_normal(N)
        field = x @ w / (np.sqrt(N) * delta) + h0
        lab = np.where(rng.random(n) < 0.5 * (1.0 + np.tanh(field)), 1.0, -1.0)
        samples[s] = w
    v_bar = samples.mean(axis=0)
    b = 0.5 * delta * np.log(rho / (1.0 - rho))  # (4.3)

    def exact_error(w):
        m, q = w @ v / N, w @ w / N
        sd = np.sqrt(delta * q)
        return m, rho * ndtr(-(m + b) / sd) + (1.0 - rho) * ndtr(-(m - b) / sd)

    m, err = exact_error(v_bar)
    v_amp = bayes_amp(x, y_obs, delta, rho, eta)[0]
    amp_m, amp_err = exact_error(v_amp)
    # fresh test inputs with clean labels; the predictive (4.1) averaged over the samples
    y_test = np.where(rng.random(n_test) < rho, 1.0, -1.0)
    x_test = y_test[:, None] * v / np.sqrt(N) + np.sqrt(delta) * rng.standard_normal((n_test, N))
    proj = x_test @ samples.T / (np.sqrt(N) * delta)  # (n_test, sweeps)
    norm = (samples**2).sum(axis=1) / (2.0 * N * delta)

    def log_mean_exp(t):
        top = t.max(axis=1, keepdims=True)
        return (top + np.log(np.mean(np.exp(t - top), axis=1, keepdims=True)))[:, 0]

    llr = (np.log(rho / (1.0 - rho)) + log_mean_exp(proj - norm) - log_mean_exp(-proj - norm))
    bayes = np.where(llr > 0, 1.0, -1.0)
    linear = np.where(x_test @ v_bar / np.sqrt(N) + b > 0, 1.0, -1.0)
    return BayesGibbsRun(float(err), float(m), float(amp_err), float(amp_m),
                         float(np.mean(bayes != y_test)), float(np.mean(linear != y_test)),
                         float(np.mean(bayes != linear)))
