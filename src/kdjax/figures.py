"""Plots, CSV files and ``report.md`` for ``kdjax reproduce`` (all the I/O of the reproduction).

The numbers come from :mod:`kdjax.reproduce`; nothing is computed here beyond selecting,
ranking and formatting them.  Matplotlib is used through its object API with the Agg canvas
(no ``pyplot``, no global backend switch).
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

__all__ = ["write_all", "write_csv"]

LAM_T, LAM_S, EPS = r"$\lambda_t$", r"$\lambda_s$", r"$\epsilon_g$"
ALPHA, GAMMA, T_ = r"$\alpha$", r"$\gamma$", r"$T$"


# --------------------------------------------------------------------------- CSV


def write_csv(path: str, header: list[str], rows) -> tuple[str, int]:
    """Write numeric ``rows`` under ``header``; rows holding a non-finite value are dropped.

    Returns ``(path, number of dropped rows)``.
    """
    kept, dropped = [], 0
    for row in rows:
        values = [float(v) for v in row]
        if all(math.isfinite(v) for v in values):
            kept.append(values)
        else:
            dropped += 1
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for values in kept:
            w.writerow([repr(v) for v in values])
    return path, dropped


# --------------------------------------------------------------------------- plotting helpers


def _figure(ncols=1, nrows=1, size=(6.4, 4.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path):
    fig.savefig(path, dpi=110)
    return path


def _colors(n, cmap="viridis"):
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return [cm(x) for x in np.linspace(0.0, 0.85, max(n, 1))]


def _plain_log_ticks(axis, lo, hi, candidates=(0.1, 0.2, 0.25, 0.5, 1, 2, 4, 5, 8, 10, 16, 20)):
    """Log axis with plain-number major ticks (``0.5, 1, 2``) and no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [c for c in candidates if lo * 0.999 <= c <= hi * 1.001]
    if len(ticks) > 7:  # keep every other one
        ticks = ticks[::2]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _plain_log_labels(axis, leads=(1.0, 2.0, 3.0, 5.0)):
    """Plain-number labels on a log axis: every decade and its ``leads`` multiples."""
    from matplotlib.ticker import FuncFormatter

    def label(v, _):
        if v <= 0:
            return ""
        lead = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return f"{v:.2g}" if lead in leads else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def _fmt(x, digits=4):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _g(x, digits=3):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


# --------------------------------------------------------------------------- figure 1


def _sim_rows(sim, figure):
    sel = np.asarray(sim["figure"]) == figure
    return {k: np.asarray(v)[sel] for k, v in sim.items() if np.ndim(v) == 1}


def figure1(res, out):
    r, p, sim = res["inheritance"], res["plan"], res["simulation"]
    paths, dropped = [], {}
    rows = [(lt, T, r["student_error"][i, j], r["teacher_error"][i])
            for i, lt in enumerate(r["lam_t"]) for j, T in enumerate(r["temperature"])]
    path, dropped["fig1_kd_student.csv"] = write_csv(
        os.path.join(out, "fig1_kd_student.csv"),
        ["lam_t", "temperature", "student_error", "teacher_error"], rows)
    paths.append(path)
    rows = [(r["hard_lam_s0"], r["hard_unreg_error"])] + list(zip(r["lam_s"], r["hard_error"]))
    rows.append((r["hard_best_lam_s"], r["hard_best_error"]))
    rows.sort(key=lambda x: x[0])
    path, dropped["fig1_hard_student.csv"] = write_csv(
        os.path.join(out, "fig1_hard_student.csv"), ["lam_s", "hard_student_error"], rows)
    paths.append(path)
    path, dropped["fig1_reference.csv"] = write_csv(
        os.path.join(out, "fig1_reference.csv"),
        ["alpha", "delta", "rho", "gamma", "bayes_error", "student_bayes_error", "hard_lam_s0",
         "hard_unreg_error", "hard_best_lam_s", "hard_best_error"],
        [(p.alpha, p.delta, p.rho, p.gamma, r["bayes_error"], r["student_bayes_error"],
          r["hard_lam_s0"], r["hard_unreg_error"], r["hard_best_lam_s"], r["hard_best_error"])])
    paths.append(path)
    s = _sim_rows(sim, 1.0)
    path, dropped["fig1_simulation.csv"] = write_csv(
        os.path.join(out, "fig1_simulation.csv"),
        ["lam_t", "temperature", "n_features", "seeds", "student_error_mean", "student_error_sem",
         "teacher_error_mean", "teacher_error_sem", "student_error_theory", "teacher_error_theory"],
        [(s["lam_t"][k], s["temperature"][k], sim["n_features"], s["seeds"][k], s["student_mean"][k],
          s["student_sem"][k], s["teacher_mean"][k], s["teacher_sem"][k], s["student_theory"][k],
          s["teacher_theory"][k]) for k in range(s["lam_t"].size)])
    paths.append(path)

    fig, axes = _figure(size=(7.6, 5.4))
    ax = axes[0, 0]
    temps = r["temperature"]
    for j, (T, c) in enumerate(zip(temps, _colors(temps.size))):
        ax.plot(r["lam_t"], r["student_error"][:, j], "-", color=c, lw=1.8,
                label=f"KD student, $T={T:g}$")
    ax.plot(r["lam_t"], r["teacher_error"], "k--", lw=2.0, label="teacher")
    ax.axhline(r["hard_unreg_error"], color="tab:red", ls=":", lw=2.0,
               label=f"hard labels, $\\lambda_s={_g(float(r['hard_lam_s0']))}$")
    ax.axhline(r["hard_best_error"], color="tab:red", ls="-.", lw=1.8,
               label=f"hard labels, best $\\lambda_s={_g(float(r['hard_best_lam_s']))}$")
    ax.axhline(r["student_bayes_error"], color="0.45", ls=(0, (5, 2, 1, 2)), lw=1.4,
               label=f"Bayes-optimal on the student's {GAMMA} N inputs")
    ax.axhline(r["bayes_error"], color="0.45", ls="-", lw=1.4, label="Bayes-optimal")
    ok = np.isfinite(s["student_mean"])
    if ok.any():
        ax.errorbar(s["lam_t"][ok], s["student_mean"][ok], yerr=s["student_sem"][ok], fmt="o",
                    color="tab:orange", mec="k", ms=6, capsize=3, zorder=5,
                    label=f"simulation, student $T={p.sim_temperature:g}$ (N={p.sim_n_features})")
        ax.errorbar(s["lam_t"][ok], s["teacher_mean"][ok], yerr=s["teacher_sem"][ok], fmt="s",
                    color="k", mfc="white", ms=6, capsize=3, zorder=5, label="simulation, teacher")
    ax.set_xscale("log")
    ax.set_xlabel(f"teacher regularisation {LAM_T}")
    ax.set_ylabel(f"test error {EPS}")
    ax.set_title(f"Inheriting the regularisation: KD student {GAMMA}={p.gamma:g}, "
                 f"$\\lambda_s=0$, $a=0$\n({ALPHA}={p.alpha:g}, $\\Delta$={p.delta:g}, "
                 f"$\\rho$={p.rho:g}, logistic teacher)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", ncol=2, framealpha=0.9)
    top = np.nanmax([np.nanmax(r["student_error"]), np.nanmax(r["teacher_error"]),
                     r["hard_unreg_error"]])
    ax.set_ylim(r["bayes_error"] - 0.01, top + 0.35 * (top - r["bayes_error"]))
    ax.grid(alpha=0.3, which="both")
    paths.append(_save(fig, os.path.join(out, "fig1_inheritance.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 2


def figure2(res, out):
    r = res["limited"]
    paths, dropped = [], {}
    path, dropped["fig2_best_over_temperature.csv"] = write_csv(
        os.path.join(out, "fig2_best_over_temperature.csv"),
        ["lam_t", "teacher_error", "best_temperature", "student_best_error"],
        zip(r["lam_t"], r["teacher_error"], r["best_temperature"], r["student_best_error"]))
    paths.append(path)
    n = r["opt_temperature"].size
    path, dropped["fig2_optimal_lam_t.csv"] = write_csv(
        os.path.join(out, "fig2_optimal_lam_t.csv"),
        ["temperature", "lam_t_student", "student_error", "teacher_error_at_lam_t_student",
         "lam_t_teacher", "teacher_best_error", "student_error_at_lam_t_teacher"],
        zip(r["opt_temperature"], r["lam_t_student"], r["student_error_at_lam_t_student"],
            r["teacher_error_at_lam_t_student"], [r["lam_t_teacher"]] * n,
            [r["teacher_best_error"]] * n, r["student_error_at_lam_t_teacher"]))
    paths.append(path)

    fig, axes = _figure(2, size=(6.0, 4.8))
    ax = axes[0, 0]
    ok = np.isfinite(r["teacher_error"]) & np.isfinite(r["student_best_error"])
    x, y, lt = r["teacher_error"][ok], r["student_best_error"][ok], r["lam_t"][ok]
    ax.plot(x, y, "-", color="0.6", lw=1, zorder=1)
    sc = ax.scatter(x, y, c=np.log10(lt), cmap="viridis", s=45, edgecolors="k", zorder=2)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(r"$\log_{10}\lambda_t$")
    if x.size:
        k = int(np.argmin(x))
        ax.scatter([x[k]], [y[k]], s=180, facecolors="none", edgecolors="tab:red", lw=2,
                   label=f"best teacher on the grid ({LAM_T}={lt[k]:.3g})", zorder=3)
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], ":", color="0.3", label=r"$\epsilon_g^{student}=\epsilon_g^{teacher}$")
    ax.set_xlabel(f"teacher's test error {EPS}" + r"$^{teacher}$")
    ax.set_ylabel(f"student's best error over {T_}, " + r"$\min_T\epsilon_g^{student}$")
    ax.set_title("Student limited by its teacher\n(each point: one teacher " + LAM_T + ")",
                 fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[0, 1]
    ok = np.isfinite(r["lam_t_student"])
    ax.plot(r["opt_temperature"][ok], r["lam_t_student"][ok], "o-", color="tab:blue", ms=7,
            label=r"$\lambda_t$ best for the student (at fixed $T$)")
    ax.axhline(r["lam_t_teacher"], color="k", ls="--",
               label=f"{LAM_T} best for the teacher itself ({_g(float(r['lam_t_teacher']))})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    vals = np.concatenate([r["lam_t_student"][ok], [float(r["lam_t_teacher"])]])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        ax.set_ylim(vals.min() / 1.6, vals.max() * 1.6)
    _plain_log_labels(ax.yaxis)
    temps = r["opt_temperature"]
    ax.set_xlim(temps.min() / 1.5, temps.max() * 1.5)
    _plain_log_ticks(ax.xaxis, temps.min() / 1.5, temps.max() * 1.5)
    ax.set_xlabel(f"temperature {T_}")
    ax.set_ylabel(f"optimal teacher regularisation {LAM_T}")
    ax.set_title("Which teacher is best: for itself or for its student?", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    paths.append(_save(fig, os.path.join(out, "fig2_limited_by_teacher.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 3


def _curve_label(curve, p):
    lam = "small" if curve["lam_s"] == p.dd_lam_s_small else "reg."
    return f"{curve['label']}, $\\lambda_s={curve['lam_s']:g}$ ({lam})"


def figure3(res, out):
    r, p, sim = res["double_descent"], res["plan"], res["simulation"]
    paths, dropped = [], {}
    rows = []
    for c, curve in enumerate(r["curves"]):
        for i, alpha in enumerate(r["alpha"]):
            rows.append((alpha, r["hard_weight"][c], r["lam_s"][c], r["fresh"][c],
                         r["student_error"][c, i], r["teacher_error"][i]))
    path, dropped["fig3_double_descent.csv"] = write_csv(
        os.path.join(out, "fig3_double_descent.csv"),
        ["alpha", "hard_weight", "lam_s", "fresh", "student_error", "teacher_error"], rows)
    paths.append(path)
    has_peak = np.isfinite(r["peak_alpha"])  # curves without an interior maximum: no row
    path, dropped["fig3_peaks.csv"] = write_csv(
        os.path.join(out, "fig3_peaks.csv"),
        ["hard_weight", "lam_s", "fresh", "peak_alpha", "peak_error", "predicted_threshold"],
        [row for row, keep in zip(zip(r["hard_weight"], r["lam_s"], r["fresh"], r["peak_alpha"],
                                      r["peak_error"], r["predicted_threshold"]), has_peak) if keep])
    paths.append(path)
    s = _sim_rows(sim, 3.0)
    path, dropped["fig3_simulation.csv"] = write_csv(
        os.path.join(out, "fig3_simulation.csv"),
        ["alpha", "hard_weight", "lam_s", "n_features", "seeds", "student_error_mean",
         "student_error_sem", "student_error_theory"],
        [(s["alpha"][k], s["hard_weight"][k], s["lam_s"][k], sim["n_features"], s["seeds"][k],
          s["student_mean"][k], s["student_sem"][k], s["student_theory"][k])
         for k in range(s["alpha"].size)])
    paths.append(path)

    fig, axes = _figure(2, size=(6.2, 4.9))
    styles = {(0.0, False): ("tab:blue", "-"), (0.0, True): ("tab:blue", "--"),
              (1.0, False): ("tab:red", "-"), (1.0, True): ("tab:red", "--")}
    for panel, fresh in enumerate((0.0, 1.0)):
        ax = axes[0, panel]
        for c, curve in enumerate(r["curves"]):
            is_fresh = r["fresh"][c] == 1.0
            if r["hard_weight"][c] == 0.0 and is_fresh != bool(fresh):
                continue
            color, ls = styles[(r["hard_weight"][c], r["lam_s"][c] != p.dd_lam_s_small)]
            ok = np.isfinite(r["student_error"][c])
            ax.plot(r["alpha"][ok], r["student_error"][c][ok], ls, marker=".", color=color, lw=1.8,
                    alpha=1.0 if r["hard_weight"][c] == 0.0 or not fresh else 0.5,
                    label=_curve_label(curve, p))
        ok = np.isfinite(r["teacher_error"])
        ax.plot(r["alpha"][ok], r["teacher_error"][ok], "k:", lw=1.5,
                label=f"teacher ({LAM_T}={p.dd_lam_t:g})")
        ax.axvline(p.gamma, color="tab:blue", lw=1.0, ls=(0, (1, 3)),
                   label=f"{ALPHA} = {GAMMA} (soft labels: samples = student weights)")
        ax.axvline(r["hard_separability_alpha"], color="tab:red", lw=1.0, ls=(0, (1, 3)),
                   label=GAMMA + ALPHA + r"$^*(\Delta/\gamma,\rho)$ (hard labels: separability)")
        if not fresh:
            sel = np.isfinite(s["student_mean"])
            if sel.any():
                ax.errorbar(s["alpha"][sel], s["student_mean"][sel], yerr=s["student_sem"][sel],
                            fmt="o", color="tab:orange", mec="k", ms=6, capsize=3, zorder=5,
                            label=f"simulation (N={p.sim_n_features})")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, r["alpha"].min(), r["alpha"].max())
        ax.set_xlabel(f"samples per dimension {ALPHA}" + (r" $=\alpha_s$" if fresh else ""))
        ax.set_ylabel(f"student test error {EPS}")
        ax.set_title(("Fresh inputs (student trains on new $\\alpha_s N$ samples)" if fresh else
                      "Same inputs (the teacher's training set)")
                     + f"\n{GAMMA}={p.gamma:g}, {T_}={p.dd_temperature:g}", fontsize=11)
        ax.legend(fontsize=7.5, loc="lower left", framealpha=0.85)
        ax.grid(alpha=0.3, which="major")
    paths.append(_save(fig, os.path.join(out, "fig3_double_descent.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 4


def _heatmap(fig, ax, values, xs, ys, title, fmt, cmap, log=False):
    from matplotlib.colors import LogNorm

    data = np.ma.masked_invalid(values)
    norm = LogNorm() if log and np.nanmin(values) > 0 else None
    im = ax.imshow(data, origin="lower", cmap=cmap, aspect="auto", norm=norm)
    cbar = fig.colorbar(im, ax=ax)
    if norm is not None:
        _plain_log_labels(cbar.ax.yaxis, leads=tuple(float(k) for k in range(1, 10)))
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(f"student size {GAMMA}")
    ax.set_ylabel(f"samples per dimension {ALPHA}")
    ax.set_title(title, fontsize=11)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, fmt(v) if np.isfinite(v) else "n/a", ha="center", va="center",
                    fontsize=10, color="w", fontweight="bold",
                    path_effects=_outline())


def _outline():
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.5, foreground="k")]


def figure4(res, out):
    r, p = res["temperature"], res["plan"]
    paths, dropped = [], {}
    rows = [(lt, T, r["student_error"][i, j]) for i, lt in enumerate(r["lam_t"])
            for j, T in enumerate(r["temperature"])]
    path, dropped["fig4_error_vs_temperature.csv"] = write_csv(
        os.path.join(out, "fig4_error_vs_temperature.csv"),
        ["lam_t", "temperature", "student_error"], rows)
    paths.append(path)
    rows = []
    for i, a in enumerate(r["map_alpha"]):
        for j, g in enumerate(r["map_gamma"]):
            rows.append((a, g, r["opt_lam_t"][i, j], r["opt_temperature"][i, j], r["opt_error"][i, j],
                         r["teacher_error_at_opt"][i, j], r["lam_t_teacher"][i],
                         r["teacher_best_error"][i], r["opt_by_gradient"][i, j], r["opt_evals"][i, j]))
    path, dropped["fig4_optimal_map.csv"] = write_csv(
        os.path.join(out, "fig4_optimal_map.csv"),
        ["alpha", "gamma", "opt_lam_t", "opt_temperature", "opt_student_error",
         "teacher_error_at_opt", "lam_t_teacher", "teacher_best_error", "by_gradient",
         "gradient_evals"], rows)
    paths.append(path)

    fig, axes = _figure(2, 2, size=(6.0, 4.6))
    ax = axes[0, 0]
    n = r["lam_t"].size
    pick = np.unique(np.linspace(0, n - 1, min(n, 6)).round().astype(int))
    for k, c in zip(pick, _colors(pick.size, "plasma")):
        ok = np.isfinite(r["student_error"][k])
        ax.plot(r["temperature"][ok], r["student_error"][k][ok], "o-", color=c, ms=4,
                label=f"{LAM_T}={r['lam_t'][k]:.3g}")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis, r["temperature"].min(), r["temperature"].max())
    ax.set_xlabel(f"temperature {T_}")
    ax.set_ylabel(f"student test error {EPS}")
    ax.set_title(f"Student error vs temperature\n({ALPHA}={p.alpha:g}, {GAMMA}={p.gamma:g}, "
                 r"$\lambda_s=0$, $a=0$)", fontsize=11)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(alpha=0.3, which="major")
    how = "L-BFGS-B, exact gradient" if float(r["gradient"]) else "coarse grid, --quick"
    _heatmap(fig, axes[0, 1], r["opt_temperature"], r["map_gamma"], r["map_alpha"],
             f"optimal temperature {T_}* ({how})", lambda v: f"{v:.2g}", "magma", log=True)
    _heatmap(fig, axes[1, 0], r["opt_lam_t"], r["map_gamma"], r["map_alpha"],
             f"optimal teacher regularisation {LAM_T}*", lambda v: f"{v:.2g}", "viridis", log=True)
    _heatmap(fig, axes[1, 1], r["opt_error"], r["map_gamma"], r["map_alpha"],
             f"student error at the optimum {EPS}*", lambda v: f"{v:.3f}", "cividis")
    paths.append(_save(fig, os.path.join(out, "fig4_temperature.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 5


def figure5(res, out):
    s, p = res["simulation"], res["plan"]
    paths, dropped = [], {}
    header = ["figure", "alpha", "lam_t", "temperature", "hard_weight", "lam_s", "n_features",
              "seeds", "student_error_theory", "student_error_mean", "student_error_sem",
              "teacher_error_theory", "teacher_error_mean", "teacher_error_sem"]
    rows = [(s["figure"][k], s["alpha"][k], s["lam_t"][k], s["temperature"][k], s["hard_weight"][k],
             s["lam_s"][k], s["n_features"], s["seeds"][k], s["student_theory"][k],
             s["student_mean"][k], s["student_sem"][k], s["teacher_theory"][k],
             s["teacher_mean"][k], s["teacher_sem"][k]) for k in range(s["figure"].size)]
    path, dropped["fig5_theory_vs_simulation.csv"] = write_csv(
        os.path.join(out, "fig5_theory_vs_simulation.csv"), header, rows)
    paths.append(path)

    fig, axes = _figure(size=(6.0, 5.4))
    ax = axes[0, 0]
    ok = np.isfinite(s["student_mean"]) & np.isfinite(s["student_theory"])
    for fig_id, marker, label in ((1.0, "o", "student, figure 1"), (3.0, "D", "student, figure 3")):
        sel = ok & (s["figure"] == fig_id)
        if sel.any():
            ax.errorbar(s["student_theory"][sel], s["student_mean"][sel], yerr=s["student_sem"][sel],
                        fmt=marker, ms=6, capsize=3, mec="k", label=label)
    sel = np.isfinite(s["teacher_mean"]) & np.isfinite(s["teacher_theory"])
    if sel.any():
        ax.errorbar(s["teacher_theory"][sel], s["teacher_mean"][sel], yerr=s["teacher_sem"][sel],
                    fmt="s", ms=6, capsize=3, mfc="white", color="k", label="teacher")
    vals = np.concatenate([s["student_theory"][ok], s["teacher_theory"][sel]])
    if vals.size:
        lo, hi = vals.min() - 0.01, vals.max() + 0.01
        ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="theory = simulation")
    ax.set_xlabel(f"exact asymptotic theory {EPS}")
    ax.set_ylabel(f"simulation {EPS} (N={p.sim_n_features}, mean $\\pm$ s.e.m.)")
    ax.set_title(f"Theory vs simulation ({p.sim_seeds} seeds per point)", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, os.path.join(out, "fig5_theory_vs_simulation.png")))
    return paths, dropped


# --------------------------------------------------------------------------- report


def _spearman(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx = np.argsort(np.argsort(x[ok])).astype(float)
    ry = np.argsort(np.argsort(y[ok])).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def report(res, dropped: dict) -> str:
    """The text of ``report.md``: each figure's claim and what the computed data show."""
    p, t = res["plan"], res["timings"]
    f1, f2, f3, f4, f5 = (res[k] for k in ("inheritance", "limited", "double_descent",
                                           "temperature", "simulation"))
    L = []
    add = L.append
    add("# kdjax reproduce: knowledge distillation on a Gaussian mixture")
    add("")
    add("Saglietti & Zdeborova, *Solvable model for inheriting the regularization through "
        "knowledge distillation* (MSML 2022), re-derived with the exact asymptotic theory of "
        "kdjax (conventions: MODEL.md). Every number below is read from the CSV files next to "
        "this report.")
    add("")
    add(f"Run: {'--quick' if p.quick else 'default'}; mixture alpha={p.alpha:g}, "
        f"Delta={p.delta:g}, rho={p.rho:g}; logistic teacher; student gamma={p.gamma:g} "
        f"(sees {p.gamma:g} N of the N coordinates). rho=0.3 (unbalanced clusters) is used because "
        "with rho=0.5 the teacher's error decreases monotonically in lam_t towards the "
        "Bayes-optimal error (its best lam_t is infinite), which hides the question of figure 2.")
    add("")

    # ---- figure 1
    kd = f1["student_error"]
    i_best, j_best = np.unravel_index(np.nanargmin(kd), kd.shape)
    kd_best = float(kd[i_best, j_best])
    kd_small = kd[0]
    hu, hb = float(f1["hard_unreg_error"]), float(f1["hard_best_error"])
    t_err = f1["teacher_error"]
    it = int(np.nanargmin(t_err))
    add("## Figure 1 - inheriting the regularisation (`fig1_inheritance.png`)")
    add("")
    add("**Paper's claim.** A student trained on the soft labels of a regularised teacher inherits "
        "the teacher's regularisation: without any regularisation of its own it generalises "
        "better than the same student trained on hard labels without regularisation, and can "
        "approach the optimally regularised one.")
    add("")
    add("**kdjax finds** (KD student: hard weight a=0, lam_s=0):")
    add("")
    add(f"- Unregularised hard-label student (lam_s={_g(float(f1['hard_lam_s0']))}): "
        f"eps_g = {_fmt(hu)}; optimally regularised (lam_s* = {_g(float(f1['hard_best_lam_s']))}): "
        f"eps_g = {_fmt(hb)}.")
    add(f"- KD student behind an almost unregularised teacher (lam_t = {f1['lam_t'][0]:.3g}): "
        f"eps_g from {_fmt(np.nanmin(kd_small))} to {_fmt(np.nanmax(kd_small))} over "
        f"T = {f1['temperature'][0]:g}..{f1['temperature'][-1]:g}.")
    add(f"- KD student at its best grid point (lam_t = {f1['lam_t'][i_best]:.3g}, "
        f"T = {f1['temperature'][j_best]:g}): eps_g = {_fmt(kd_best)}.")
    if np.isfinite(hu) and np.isfinite(hb) and hu > hb:
        frac = (hu - kd_best) / (hu - hb)
        verdict = ("better than" if kd_best < hu else "no better than")
        add(f"- So the unregularised KD student does {verdict} the unregularised hard-label student "
            f"(by {_fmt(hu - kd_best)}) and recovers {100 * frac:.0f}% of the gap between the "
            f"unregularised and the optimally regularised hard-label student"
            + (" (it even beats the latter)." if kd_best < hb else "."))
    add(f"- Teacher: best grid error {_fmt(float(t_err[it]))} at lam_t = {f1['lam_t'][it]:.3g}; "
        f"Bayes-optimal error {_fmt(float(f1['bayes_error']))} on the full input, "
        f"{_fmt(float(f1['student_bayes_error']))} on the student's gamma N coordinates.")
    add("")

    # ---- figure 2
    add("## Figure 2 - the student is limited by its teacher (`fig2_limited_by_teacher.png`)")
    add("")
    add("**Paper's claim.** The student's performance is closely linked to and limited by the "
        "optimality of its teacher: the better the teacher, the better the best student, and the "
        "teacher that is best for the student is (close to) the teacher that is best on its own.")
    add("")
    te, sb = f2["teacher_error"], f2["student_best_error"]
    rho_s = _spearman(te, sb)
    ok = np.isfinite(te) & np.isfinite(sb)
    k_t = int(np.nanargmin(np.where(ok, te, np.nan)))
    k_s = int(np.nanargmin(np.where(ok, sb, np.nan)))
    add("**kdjax finds:**")
    add("")
    add(f"- Over {int(ok.sum())} teachers (lam_t = {f2['lam_t'][0]:.3g}..{f2['lam_t'][-1]:.3g}), "
        f"the Spearman rank correlation between the teacher's error and its student's best error "
        f"(minimised over T) is {_g(rho_s, 3)}.")
    add(f"- On the lam_t grid the teacher is best at lam_t = {f2['lam_t'][k_t]:.3g} "
        f"(eps_t = {_fmt(float(te[k_t]))}); the student's best error is smallest at lam_t = "
        f"{f2['lam_t'][k_s]:.3g} (eps_s = {_fmt(float(sb[k_s]))}).")
    below = int(np.sum(sb[ok] < te[ok]))
    add(f"- The best student beats its own teacher at {below} of {int(ok.sum())} lam_t values"
        + (f" (teachers with lam_t in {{{', '.join(f'{x:.3g}' for x in f2['lam_t'][ok][sb[ok] < te[ok]])}}})."
           if below else "."))
    add(f"- Refined optima (Brent in log lam_t, as `best_teacher` defines them): the teacher's own "
        f"optimum is lam_t = {_g(float(f2['lam_t_teacher']))} (eps_t = "
        f"{_fmt(float(f2['teacher_best_error']))}); the student's optimal lam_t at each T:")
    add("")
    add("| T | lam_t best for student | student error there | student error at teacher's lam_t |"
        " teacher error at student's lam_t |")
    add("| --- | --- | --- | --- | --- |")
    for k, T in enumerate(f2["opt_temperature"]):
        add(f"| {T:g} | {_g(float(f2['lam_t_student'][k]))} | "
            f"{_fmt(float(f2['student_error_at_lam_t_student'][k]))} | "
            f"{_fmt(float(f2['student_error_at_lam_t_teacher'][k]))} | "
            f"{_fmt(float(f2['teacher_error_at_lam_t_student'][k]))} |")
    add("")
    ratios = f2["lam_t_student"] / float(f2["lam_t_teacher"])
    cost = f2["student_error_at_lam_t_teacher"] - f2["student_error_at_lam_t_student"]
    if np.isfinite(ratios).any():
        add(f"- lam_t(student) / lam_t(teacher) ranges over {_g(np.nanmin(ratios))}..."
            f"{_g(np.nanmax(ratios))}; picking the teacher's own optimum instead of the student's "
            f"costs the student {_fmt(np.nanmin(cost), 5)}...{_fmt(np.nanmax(cost), 5)} in test "
            f"error (the most at T = {f2['opt_temperature'][int(np.nanargmax(cost))]:g}).")
    add("")

    # ---- figure 3
    add("## Figure 3 - double descent (`fig3_double_descent.png`)")
    add("")
    add("**Paper's claim.** Without regularisation the student's test error peaks where it can "
        "first interpolate its training targets; with soft labels that is where samples equal "
        "student weights, alpha = gamma; with hard labels it is where its data stop being "
        "linearly separable. Regularisation (of the student or, through KD, of the teacher) "
        "damps the peak.")
    add("")
    add(f"**kdjax finds** (teacher lam_t = {p.dd_lam_t:g}, T = {p.dd_temperature:g}, alpha on "
        f"{len(f3['alpha'])} points from {f3['alpha'][0]:.3g} to {f3['alpha'][-1]:.3g}; "
        f"'small' lam_s = {p.dd_lam_s_small:g}, 'reg.' lam_s = {p.dd_lam_s_reg:g}):")
    add("")
    add("| curve | lam_s | peak at alpha | peak error | predicted threshold |")
    add("| --- | --- | --- | --- | --- |")
    for c, curve in enumerate(f3["curves"]):
        pa, pe = float(f3["peak_alpha"][c]), float(f3["peak_error"][c])
        add(f"| {curve['label']} | {curve['lam_s']:g} | "
            f"{_g(pa) if np.isfinite(pa) else 'no interior maximum'} | {_fmt(pe)} | "
            f"{_g(float(f3['predicted_threshold'][c]))} |")
    add("")
    add(f"- Predicted thresholds: alpha = gamma = {p.gamma:g} (soft labels); the hard-label "
        f"student's separability threshold gamma alpha*(Delta/gamma, rho) = "
        f"{_g(float(f3['hard_separability_alpha']))} (the teacher's own: "
        f"{_g(float(f3['teacher_separability_alpha']))}). Peak positions are read on the alpha "
        "grid, so they are located to within one grid step.")
    err, alphas = f3["student_error"], f3["alpha"]
    kd_small, hard_small = 0, 4  # curve order of reproduce.double_descent_curves
    pk, ph = float(f3["peak_alpha"][kd_small]), float(f3["peak_alpha"][hard_small])
    if np.isfinite(pk) and np.isfinite(ph):
        add(f"- KD moves the interpolation peak: with lam_s = {p.dd_lam_s_small:g} the soft-label "
            f"student peaks at alpha = {_g(pk)} (eps_g = {_fmt(float(f3['peak_error'][kd_small]))}), "
            f"the hard-label student at alpha = {_g(ph)}.")
    below = (alphas < float(f3["hard_separability_alpha"])) & np.isfinite(err[hard_small])
    if below.sum() >= 2:
        seg = err[hard_small][below]
        add(f"- Hard labels, lam_s = {p.dd_lam_s_small:g}: on the separable side (alpha < "
            f"{_g(float(f3['hard_separability_alpha']))}) the error stays within "
            f"{_fmt(seg.min())}...{_fmt(seg.max())} (the lam_s -> 0 student is the max-margin "
            "classifier there); it falls only once the data stop being separable, so its 'peak' "
            "is the edge of this plateau.")
    for c, curve in enumerate(f3["curves"]):
        if curve["lam_s"] != p.dd_lam_s_reg:
            continue
        row = err[c][np.isfinite(err[c])]
        rises = int(np.sum(np.diff(row) > 1e-4))
        add(f"- {curve['label']}, lam_s = {curve['lam_s']:g}: "
            + ("decreases monotonically in alpha (no peak)." if rises == 0 else
               f"{rises} increase(s) larger than 1e-4 between neighbouring alpha."))
    c_same, c_fresh = 0, 2
    if np.isfinite(f3["peak_error"][c_same]) and np.isfinite(f3["peak_error"][c_fresh]):
        add(f"- Same vs fresh inputs (lam_s = {p.dd_lam_s_small:g}): peak error "
            f"{_fmt(float(f3['peak_error'][c_same]))} at alpha = {_g(float(f3['peak_alpha'][c_same]))} "
            f"vs {_fmt(float(f3['peak_error'][c_fresh]))} at alpha_s = "
            f"{_g(float(f3['peak_alpha'][c_fresh]))}.")
    n_nan = int(np.sum(~np.isfinite(f3["student_error"])))
    add(f"- Points left out (solve not converged or no finite minimiser): {n_nan} of "
        f"{f3['student_error'].size}; they are absent from `fig3_double_descent.csv`.")
    add("")

    # ---- figure 4
    add("## Figure 4 - the temperature (`fig4_temperature.png`)")
    add("")
    add("**Question.** How does the student's error depend on T, and which (lam_t, T) is optimal "
        "as the sample ratio alpha and the student size gamma change?")
    add("")
    bt = f2["best_temperature"]
    add("**kdjax finds:**")
    add("")
    add("- Best T at each lam_t (refined by Brent within T in "
        f"[{p.t_bounds[0]:g}, {p.t_bounds[1]:g}]): "
        + ", ".join(f"lam_t={lt:.3g}: T*={_g(float(T))}" for lt, T in zip(f2["lam_t"], bt)
                    if np.isfinite(T)) + ".")
    spread = np.nanmax(f4["student_error"], axis=1) - np.nanmin(f4["student_error"], axis=1)
    add(f"- The spread of the error over the T grid at fixed lam_t ranges over "
        f"{_fmt(np.nanmin(spread), 5)}...{_fmt(np.nanmax(spread), 5)}: the temperature matters "
        "most for badly regularised teachers.")
    how = ("L-BFGS-B on (log lam_t, log T) with the exact gradient (implicit differentiation "
           "through both fixed points), started from the best point of a coarse grid"
           if float(f4["gradient"]) else
           "best point of a coarse grid only (--quick skips the gradient search, whose compilation "
           "alone takes ~40 s)")
    add(f"- Optimal recipe over (alpha, gamma), found by {how}; bounds lam_t in "
        f"[{p.lam_t_bounds[0]:g}, {p.lam_t_bounds[1]:g}], T in [{p.t_bounds[0]:g}, {p.t_bounds[1]:g}]:")
    add("")
    add("| alpha | gamma | lam_t* | T* | student error | teacher error at lam_t* "
        "| teacher's own best lam_t |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for i, a in enumerate(f4["map_alpha"]):
        for j, g in enumerate(f4["map_gamma"]):
            add(f"| {a:g} | {g:g} | {_g(float(f4['opt_lam_t'][i, j]))} | "
                f"{_g(float(f4['opt_temperature'][i, j]))} | {_fmt(float(f4['opt_error'][i, j]))} | "
                f"{_fmt(float(f4['teacher_error_at_opt'][i, j]))} | {_g(float(f4['lam_t_teacher'][i]))} |")
    add("")
    ratio = f4["opt_lam_t"] / f4["lam_t_teacher"][:, None]
    if np.isfinite(ratio).any():
        add(f"- Optimal T* ranges over {_g(np.nanmin(f4['opt_temperature']))}..."
            f"{_g(np.nanmax(f4['opt_temperature']))}; the student's optimal lam_t* is "
            f"{_g(np.nanmin(ratio))}...{_g(np.nanmax(ratio))} times the teacher's own optimal lam_t, "
            f"and the teacher it calls for errs at most "
            f"{_fmt(np.nanmax(f4['teacher_error_at_opt'] - f4['teacher_best_error'][:, None]), 4)} "
            "more than the best teacher.")
    at_bound = np.isclose(f4["opt_temperature"], p.t_bounds[1], rtol=1e-3)
    if at_bound.any():
        add(f"- At {int(at_bound.sum())} cell(s) the optimal T sits at the upper bound "
            f"{p.t_bounds[1]:g}: there the error keeps decreasing (slowly, as 1/T) towards its "
            "large-T limit, soft-label regression of the teacher's logits.")
    add("")

    # ---- figure 5
    add("## Figure 5 - theory vs simulation (`fig5_theory_vs_simulation.png`, overlaid on figures 1 and 3)")
    add("")
    ok = np.isfinite(f5["student_mean"]) & np.isfinite(f5["student_theory"])
    z = (f5["student_mean"] - f5["student_theory"]) / f5["student_sem"]
    zt = (f5["teacher_mean"] - f5["teacher_theory"]) / f5["teacher_sem"]
    gap = np.nanmax(np.abs(f5["student_mean"] - f5["student_theory"])[ok]) if ok.any() else math.nan
    add(f"Simulations of exactly the same objectives at N = {int(f5['n_features'])}, "
        f"{int(f5['n_seeds'])} seeds per point (`kdjax.simulate.simulate_student`; error = "
        "MODEL.md formula at each seed's overlaps, mean +- s.e.m. over seeds).")
    add("")
    add(f"- {int(ok.sum())} of {f5['figure'].size} points simulated successfully; "
        f"student |sim - theory| <= {_fmt(gap)}, "
        f"max |z| = {_g(np.nanmax(np.abs(z[ok])) if ok.any() else math.nan, 3)} s.e.m.; teacher max |z| = "
        f"{_g(np.nanmax(np.abs(zt[ok])) if ok.any() else math.nan, 3)}.")
    add("- All points use the same seeds, hence the same cluster direction and training sets: "
        "their deviations from the theory are correlated (they tend to share a sign), so the "
        "z-scores are not independent. Deviations of one to three s.e.m. at this N and number of "
        "seeds are within what sample-to-sample fluctuations and O(1/N) finite-size corrections "
        "allow.")
    add("")

    # ---- bookkeeping
    add("## Dropped rows and run statistics")
    add("")
    total_dropped = sum(dropped.values())
    if total_dropped:
        add("Rows with a non-finite value (a solve that did not converge, or a setting without a "
            "finite minimiser) are left out of the CSV files:")
        add("")
        for name, n in dropped.items():
            if n:
                add(f"- `{name}`: {n} row(s) dropped")
    else:
        add("No CSV row had to be dropped: every solve converged.")
    refused = res["solves"]["refused"]
    if refused:
        add(f"- {len(refused)} setting(s) were refused for having no finite minimiser, e.g.: "
            f"{refused[0][1]}")
    add("")
    add(f"- Theory solves: {res['solves']['count']} in {res['solves']['seconds']:.0f} s "
        "(compilation included).")
    add("- Wall time by stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + ".")
    add("")
    return "\n".join(L)



def write_all(res: dict, out_dir: str, progress=None) -> list[str]:
    """Write every figure, its CSV files and ``report.md``; return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths, dropped = [], {}
    makers = (figure1, figure2, figure3, figure4, figure5)
    for n, make in enumerate(makers):
        ps, ds = make(res, out_dir)
        paths += ps
        dropped.update(ds)
        if progress is not None:
            progress("figures", n + 1, len(makers) + 1)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write(report(res, dropped))
    paths.append(path)
    if progress is not None:
        progress("figures", len(makers) + 1, len(makers) + 1)
    return paths
