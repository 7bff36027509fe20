"""Self-distillation study: a chain of students, each distilled from the previous one on the
teacher's own inputs (``gamma = 1``, hard weight ``a = 0``), on a mixture with noisy labels
(Takanami, Takahashi & Sakata 2025, arXiv 2501.16226: label noise ``eta``, per-generation
temperature), in the exact theory of kdjax (docs/model.md, "Distillation chains"; docs/chains.md).

``compute`` gives (a) the test error of every generation ``0..K`` (0: the teacher) against the
depth, one curve per label noise, theory (``kdjax.solve_chain``) and finite-``N`` simulation
(``kdjax.simulate_chain``); (b) the best per-generation schedule ``(T_k, lam_k)`` found by
``kdjax.optimize_kd`` at one noise level, and the best depth at that optimum; (c) the gain
``teacher_error - student_error`` of the first self-distilled generation over an
``(alpha, eta)`` grid.  ``tables``, ``plot`` and ``section`` give the CSV rows,
``fig6_self_distillation.png`` and the report's section.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

import kdjax

from ._common import EPS, SIM_LABEL, Table, colors, figure, fmt, g, save, solve_or_none
from ._plan import Plan, Progress, tick

__all__ = ["SelfDistillation", "compute", "theory", "students", "tables", "plot",
           "section", "PNG", "CSVS"]

STAGE = "self-distillation"
PNG = "fig6_self_distillation.png"
CSVS = ("fig6_error_vs_depth.csv", "fig6_optimal_schedule.csv", "fig6_gain_map.csv")


@dataclasses.dataclass(frozen=True)
class SelfDistillation:
    """The numbers of the study (NaN: a solve that failed, or no converged simulation)."""

    data: str  # the chains' inputs: "same" (or "fresh" where same-input chains are not solved)
    label_noise: np.ndarray  # (E,)
    theory: np.ndarray  # (E, K + 1): error of generation 0..K, fixed schedule
    sim_mean: np.ndarray  # (E, K + 1)
    sim_sem: np.ndarray  # (E, K + 1)
    sim_seeds: np.ndarray  # (E,) converged seeds
    n_features: float  # N of the simulations
    opt_noise: float
    opt_temperature: np.ndarray  # (K_opt,) optimal T_k
    opt_lam: np.ndarray  # (K_opt,) optimal lam_k
    opt_errors: np.ndarray  # (K_opt + 1,) each generation's error at the optimum
    opt_start_errors: np.ndarray  # (K_opt + 1,) the same at the fixed schedule
    opt_best_depth: int
    opt_solves: int
    opt_converged: bool
    gain_alpha: np.ndarray  # (A,)
    gain_noise: np.ndarray  # (G,)
    gain_teacher: np.ndarray  # (A, G) teacher error
    gain_student: np.ndarray  # (A, G) generation-1 error
    seconds: dict



def students(p: Plan, depth: int, data: str | None = None, temperature=None, lam=None) -> tuple:
    """The self-distillation chain of ``depth`` generations (``gamma = 1``, ``a = 0``), each at
    the plan's ``(T, lam)`` unless per-generation sequences are given."""
    data = data or p.sd_data
    temperature = [p.sd_temperature] * depth if temperature is None else list(temperature)
    lam = [p.sd_lam] * depth if lam is None else list(lam)
    extra = dict(alpha=float(p.sd_alpha)) if data == "fresh" else {}
    return tuple(kdjax.Student(1.0, float(T), hard_weight=0.0, lam=float(l), data=data, **extra)
                 for T, l in zip(temperature, lam))


def mixture(p: Plan, eta: float, alpha: float | None = None) -> kdjax.Mixture:
    return kdjax.Mixture(float(p.sd_alpha if alpha is None else alpha), p.delta, p.sd_rho, float(eta))


def theory(p: Plan, eta: float, chain: tuple, alpha: float | None = None) -> np.ndarray:
    """Test error of generations ``0..K`` of ``chain`` (``kdjax.solve_chain``; NaN from the first
    generation that failed on)."""
    res, _ = solve_or_none(kdjax.solve_chain, mixture(p, eta, alpha), kdjax.Teacher(p.loss, p.sd_lam_t), chain,
                           throw=False)
    if res is None:
        return np.full(len(chain) + 1, np.nan)
    errors = np.array([float(res.teacher.gen_error)] + [float(gen.gen_error) for gen in res.generations])
    failed = int(res.failed)
    if failed >= 0:
        errors[failed:] = np.nan
    return errors


def _simulate(p: Plan, eta: float, chain: tuple, seeds) -> tuple[np.ndarray, np.ndarray, int]:
    sim = kdjax.simulate_chain(mixture(p, eta), kdjax.Teacher(p.loss, p.sd_lam_t), chain,
                               n_features=p.sd_sim_n_features, seeds=seeds)
    ok = int(np.sum(np.asarray(sim.converged, bool)))
    nan = np.full(len(chain) + 1, np.nan)
    if ok < 2:
        return nan, nan, ok
    mean, sem = sim.mean(failed="drop"), sim.sem(failed="drop")
    pick = lambda s: np.array([float(s.teacher.gen_error)] + [float(gen.gen_error) for gen in s.generations])
    return pick(mean), pick(sem), ok


def _optimum(p: Plan, data: str):
    """(b): ``optimize_kd`` over every generation's ``(T_k, lam_k)`` at noise ``p.sd_opt_noise``."""
    K = p.sd_opt_depth
    chain = students(p, K, data)
    free = tuple(f"gen{k}.{name}" for k in range(1, K + 1) for name in ("temperature", "lam_s"))
    start = theory(p, p.sd_opt_noise, chain)
    opt, err = solve_or_none(kdjax.optimize_kd, mixture(p, p.sd_opt_noise), kdjax.Teacher(p.loss, p.sd_lam_t),
                             chain, free, steps=p.sd_opt_steps, tol=p.opt_tol)
    if opt is None:
        nan = np.full(K, np.nan)
        return dict(opt_temperature=nan, opt_lam=nan, opt_errors=np.full(K + 1, np.nan), opt_start_errors=start,
                    opt_best_depth=-1, opt_solves=0, opt_converged=False)
    T = np.array([opt.params[f"gen{k}.temperature"] for k in range(1, K + 1)])
    lam = np.array([opt.params[f"gen{k}.lam_s"] for k in range(1, K + 1)])
    errors = np.asarray(opt.chain_errors, float)
    if not opt.converged:
        errors = np.full(K + 1, np.nan)
    return dict(opt_temperature=T, opt_lam=lam, opt_errors=errors, opt_start_errors=start,
                opt_best_depth=int(opt.best_depth), opt_solves=int(opt.solves), opt_converged=bool(opt.converged))


def compute(p: Plan, progress: Progress | None = None, *, simulate: bool = True,
            optimise: bool = True) -> SelfDistillation:
    """The study's three parts (``simulate`` / ``optimise`` off: those parts are NaN)."""
    data, K = p.sd_data, p.sd_depth
    etas = np.asarray(p.sd_label_noises, float)
    alphas, gain_etas = np.asarray(p.sd_gain_alphas, float), np.asarray(p.sd_gain_noises, float)
    total = 2 * etas.size + 1 + alphas.size * gain_etas.size
    done, seconds = 0, {}
    chain = students(p, K, data)

    t0 = time.perf_counter()
    th = np.full((etas.size, K + 1), np.nan)
    for i, eta in enumerate(etas):
        th[i] = theory(p, eta, chain)
        done += 1
        tick(progress, STAGE, done, total)
    seconds["theory"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mean, sem = np.full_like(th, np.nan), np.full_like(th, np.nan)
    seeds = np.zeros(etas.size)
    S = p.sd_sim_seeds
    for i, eta in enumerate(etas):
        if simulate:
            mean[i], sem[i], seeds[i] = _simulate(p, eta, chain, list(range(i * S, (i + 1) * S)))
        done += 1
        tick(progress, STAGE, done, total)
    seconds["simulation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if optimise:
        opt = _optimum(p, data)
    else:
        K2 = p.sd_opt_depth
        opt = dict(opt_temperature=np.full(K2, np.nan), opt_lam=np.full(K2, np.nan),
                   opt_errors=np.full(K2 + 1, np.nan), opt_start_errors=np.full(K2 + 1, np.nan),
                   opt_best_depth=-1, opt_solves=0, opt_converged=False)
    done += 1
    tick(progress, STAGE, done, total)
    seconds["optimum"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    gain_t = np.full((alphas.size, gain_etas.size), np.nan)
    gain_s = np.full_like(gain_t, np.nan)
    one = students(p, 1, p.sd_data)
    for i, a in enumerate(alphas):
        for j, eta in enumerate(gain_etas):
            gain_t[i, j], gain_s[i, j] = theory(p, eta, one, alpha=a)
            done += 1
            tick(progress, STAGE, done, total)
    seconds["gain map"] = time.perf_counter() - t0
    return SelfDistillation(
        data=data, label_noise=etas, theory=th, sim_mean=mean, sim_sem=sem, sim_seeds=seeds,
        n_features=float(p.sd_sim_n_features),
        opt_noise=float(p.sd_opt_noise), **opt, gain_alpha=alphas, gain_noise=gain_etas,
        gain_teacher=gain_t, gain_student=gain_s, seconds=seconds)


# --------------------------------------------------------------------------- CSV rows

ERROR_VS_DEPTH = ["label_noise", "generation", "temperature", "lam", "error_theory", "error_sim_mean",
                  "error_sim_sem", "sim_seeds", "n_features"]
OPTIMAL_SCHEDULE = ["label_noise", "generation", "temperature", "lam", "error_optimal", "error_fixed_schedule",
                    "best_depth"]
GAIN_MAP = ["alpha", "label_noise", "teacher_error", "student_error", "gain"]


def _sd(res):
    return res.self_distillation if hasattr(res, "self_distillation") else res


def tables(res, p: Plan | None = None) -> list[Table]:
    """``fig6_error_vs_depth.csv`` (theory and simulation, generation 0 = the teacher, whose
    temperature and lam columns hold 0 and lam_t), ``fig6_optimal_schedule.csv`` and
    ``fig6_gain_map.csv``.  Rows without a simulation keep the theory (the simulation columns NaN
    would drop them, so those hold -1)."""
    p = p or res.plan
    r = _sd(res)
    rows = []
    for i, eta in enumerate(r.label_noise):
        for k in range(r.theory.shape[1]):
            T, lam = (0.0, p.sd_lam_t) if k == 0 else (p.sd_temperature, p.sd_lam)
            sim = (r.sim_mean[i, k], r.sim_sem[i, k]) if np.isfinite(r.sim_mean[i, k]) else (-1.0, -1.0)
            rows.append((eta, k, T, lam, r.theory[i, k], *sim, r.sim_seeds[i], p.sd_sim_n_features))
    sched = [(r.opt_noise, 0, 0.0, p.sd_lam_t, r.opt_errors[0], r.opt_start_errors[0], r.opt_best_depth)]
    sched += [(r.opt_noise, k + 1, r.opt_temperature[k], r.opt_lam[k], r.opt_errors[k + 1],
               r.opt_start_errors[k + 1], r.opt_best_depth) for k in range(r.opt_temperature.size)]
    gain = [(a, eta, r.gain_teacher[i, j], r.gain_student[i, j], r.gain_teacher[i, j] - r.gain_student[i, j])
            for i, a in enumerate(r.gain_alpha) for j, eta in enumerate(r.gain_noise)]
    return [Table(CSVS[0], ERROR_VS_DEPTH, rows), Table(CSVS[1], OPTIMAL_SCHEDULE, sched),
            Table(CSVS[2], GAIN_MAP, gain)]


# --------------------------------------------------------------------------- plot


def plot(res, path: str) -> str:
    """``fig6_self_distillation.png``: (a) error vs depth per noise, (b) the optimal schedule's
    errors vs the fixed one's, (c) the gain of generation 1 over its teacher on (alpha, eta)."""
    r, p = _sd(res), res.plan
    fig, axes = figure(ncols=3, size=(5.0, 4.2))
    ax = axes[0, 0]
    depth = np.arange(r.theory.shape[1])
    for i, (eta, c) in enumerate(zip(r.label_noise, colors(r.label_noise.size, "plasma"))):
        ax.plot(depth, r.theory[i], "-", color=c, lw=1.8, label=f"$\\eta={eta:g}$")
        ok = np.isfinite(r.sim_mean[i])
        if ok.any():
            ax.errorbar(depth[ok], r.sim_mean[i, ok], yerr=r.sim_sem[i, ok], fmt="o", color=c, mec="k", ms=5,
                        capsize=3)
    ax.set_xticks(depth)
    ax.set_xlabel("generation (0 = teacher)")
    ax.set_ylabel(f"test error {EPS}")
    ax.set_title(f"(a) self-distillation, {r.data} inputs, $T={p.sd_temperature:g}$, "
                 f"$\\lambda={p.sd_lam:g}$\nlines: theory; dots: " + SIM_LABEL.format(n=p.sd_sim_n_features),
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[0, 1]
    d2 = np.arange(r.opt_errors.size)
    ax.plot(d2, r.opt_start_errors, "s--", color="0.4", label=f"fixed $T={p.sd_temperature:g}$, "
                                                               f"$\\lambda={p.sd_lam:g}$")
    ax.plot(d2, r.opt_errors, "o-", color="tab:red", label="optimal per-generation $(T_k, \\lambda_k)$")
    for k in range(r.opt_temperature.size):
        if np.isfinite(r.opt_errors[k + 1]):
            ax.annotate(f"T={g(r.opt_temperature[k], 2)}\n$\\lambda$={g(r.opt_lam[k], 2)}",
                        (k + 1, r.opt_errors[k + 1]), fontsize=7, xytext=(4, 6), textcoords="offset points")
    ax.set_xticks(d2)
    ax.set_xlabel("generation (0 = teacher)")
    ax.set_ylabel(f"test error {EPS}")
    ax.set_title(f"(b) optimal schedule (optimize_kd), $\\eta={r.opt_noise:g}$", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[0, 2]
    gain = r.gain_teacher - r.gain_student
    lim = float(np.nanmax(np.abs(gain))) if np.isfinite(gain).any() else 1.0
    im = ax.imshow(gain, origin="lower", cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(gain.shape[0]):
        for j in range(gain.shape[1]):
            ax.text(j, i, fmt(gain[i, j], 3), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(r.gain_noise.size), [f"{e:g}" for e in r.gain_noise])
    ax.set_yticks(range(r.gain_alpha.size), [f"{a:g}" for a in r.gain_alpha])
    ax.set_xlabel("label noise $\\eta$")
    ax.set_ylabel("$\\alpha$")
    ax.set_title("(c) gain of generation 1: teacher error - student error", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save(fig, path)


# --------------------------------------------------------------------------- report section


def section(res) -> list[str]:
    """The report's self-distillation section: each finding with its numbers."""
    r, p = _sd(res), res.plan
    K = r.theory.shape[1] - 1
    L = [f"## Self-distillation chains (`{PNG}`)", ""]
    add = L.append
    add("**Question** (Takanami, Takahashi & Sakata 2025). Does re-distilling a model into a copy of "
        "itself (same inputs, gamma = 1, hard weight a = 0) over several generations undo the label "
        "noise its teacher fitted, and how deep should the chain go?")
    add("")
    add(f"**Setting.** alpha = {p.sd_alpha:g}, Delta = {p.delta:g}, rho = {p.sd_rho:g}, {p.loss} teacher "
        f"lam_t = {p.sd_lam_t:g}; every generation T = {p.sd_temperature:g}, lam = {p.sd_lam:g}; "
        f"{r.data} inputs (data `fig6_error_vs_depth.csv`, `fig6_optimal_schedule.csv`, `fig6_gain_map.csv`).")
    add("")
    add("- (a) Error of each generation (theory; simulation mean +- s.e.m. where run):")
    add("")
    add("  | eta | " + " | ".join(f"gen {k}" for k in range(K + 1)) + " | best depth |")
    add("  | --- | " + " | ".join("---" for _ in range(K + 1)) + " | --- |")
    for i, eta in enumerate(r.label_noise):
        cells = []
        for k in range(K + 1):
            c = fmt(r.theory[i, k])
            if np.isfinite(r.sim_mean[i, k]):
                c += f" ({fmt(r.sim_mean[i, k])} +- {fmt(r.sim_sem[i, k])})"
            cells.append(c)
        best = int(np.nanargmin(r.theory[i])) if np.isfinite(r.theory[i]).any() else -1
        add(f"  | {eta:g} | " + " | ".join(cells) + f" | {best} |")
    add("")
    for i, eta in enumerate(r.label_noise):
        row = r.theory[i]
        if np.isfinite(row).all() and K >= 1:
            best = int(np.argmin(row))
            add(f"- eta = {eta:g}: generation 1 {'improves on' if row[1] < row[0] else 'is worse than'} the "
                f"teacher by {fmt(abs(row[0] - row[1]))}; the best generation is {best} "
                f"(error {fmt(row[best])}, {fmt(row[0] - row[best])} below the teacher); generation {K} is at "
                f"{fmt(row[K])}.")
    z = (r.sim_mean - r.theory) / r.sim_sem
    ok = np.isfinite(z)
    if ok.any():
        add(f"- Simulation (N = {p.sd_sim_n_features}, {int(np.nanmin(r.sim_seeds))}-{int(np.nanmax(r.sim_seeds))} "
            f"converged seeds): max |z| = {np.max(np.abs(z[ok])):.2f} over {int(ok.sum())} generation errors, "
            f"largest |sim - theory| = {np.max(np.abs((r.sim_mean - r.theory)[ok])):.4f}.")
    add("")
    if np.isfinite(r.opt_errors).all():
        sched = ", ".join(f"(T_{k + 1} = {g(r.opt_temperature[k])}, lam_{k + 1} = {g(r.opt_lam[k])})"
                          for k in range(r.opt_temperature.size))
        add(f"- (b) Best per-generation schedule at eta = {r.opt_noise:g} over {r.opt_temperature.size} "
            f"generations (`optimize_kd`, {r.opt_solves} solves): {sched}. Errors by generation: "
            + " / ".join(fmt(e) for e in r.opt_errors)
            + " (fixed schedule: " + " / ".join(fmt(e) for e in r.opt_start_errors) + "). "
            f"Best depth at the optimum: {r.opt_best_depth}; the last generation gains "
            f"{fmt(r.opt_start_errors[-1] - r.opt_errors[-1])} over the fixed schedule and "
            f"{fmt(r.opt_errors[0] - r.opt_errors[-1])} over the teacher.")
    else:
        add(f"- (b) The schedule search at eta = {r.opt_noise:g} did not converge (or was not run).")
    add("")
    gain = r.gain_teacher - r.gain_student
    if np.isfinite(gain).any():
        wins = [(a, e) for i, a in enumerate(r.gain_alpha) for j, e in enumerate(r.gain_noise) if gain[i, j] > 0]
        i, j = np.unravel_index(np.nanargmax(gain), gain.shape)
        lo = np.unravel_index(np.nanargmin(gain), gain.shape)
        add(f"- (c) Generation 1 beats its teacher at {len(wins)} of {gain.size} points of the (alpha, eta) "
            f"grid (alpha in {', '.join(f'{a:g}' for a in r.gain_alpha)}; eta in "
            f"{', '.join(f'{e:g}' for e in r.gain_noise)}); largest gain {fmt(gain[i, j])} at alpha = "
            f"{r.gain_alpha[i]:g}, eta = {r.gain_noise[j]:g}; smallest {fmt(gain[lo])} at alpha = "
            f"{r.gain_alpha[lo[0]]:g}, eta = {r.gain_noise[lo[1]]:g}.")
        for j, e in enumerate(r.gain_noise):
            col = gain[:, j]
            add(f"  - eta = {e:g}: gain " + ", ".join(f"{fmt(v)} (alpha {a:g})" for a, v in zip(r.gain_alpha, col)))
    add("")
    add("- Cost: " + ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items()) + ".")
    add("")
    return L
