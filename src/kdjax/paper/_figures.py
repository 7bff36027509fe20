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


SIM_LABEL = "simulation, N={n} (mean $\\pm$ s.e.m.)"


def figure1(res, out):
    r, p, sim, f2 = res["inheritance"], res["plan"], res["simulation"], res["limited"]
    paths, dropped = [], {}
    rows = [(lt, T, r["student_error"][i, j], r["teacher_error"][i])
            for i, lt in enumerate(r["lam_t"]) for j, T in enumerate(r["temperature"])]
    path, dropped["fig1_kd_student.csv"] = write_csv(
        os.path.join(out, "fig1_kd_student.csv"),
        ["lam_t", "temperature", "student_error", "teacher_error"], rows)
    paths.append(path)
    rows = [(r["hard_lam_s0"], r["hard_unreg_error"])] + list(zip(r["lam_s"], r["hard_error"]))
    rows.append((r["hard_best_lam_s"], r["hard_best_error"]))
    rows = sorted(set((float(a), float(b)) for a, b in rows))
    path, dropped["fig1_hard_student.csv"] = write_csv(
        os.path.join(out, "fig1_hard_student.csv"), ["lam_s", "hard_student_error"], rows)
    paths.append(path)
    path, dropped["fig1_reference.csv"] = write_csv(
        os.path.join(out, "fig1_reference.csv"),
        ["alpha", "delta", "rho", "gamma", "bayes_error", "student_bayes_error", "hard_teacher_lam_t",
         "hard_lam_s0", "hard_unreg_error", "hard_best_lam_s", "hard_best_error",
         "hard_best_by_gradient"],
        [(p.alpha, p.delta, p.rho, p.gamma, r["bayes_error"], r["student_bayes_error"],
          r["hard_teacher_lam_t"], r["hard_lam_s0"], r["hard_unreg_error"], r["hard_best_lam_s"],
          r["hard_best_error"], r["hard_best_by_gradient"])])
    paths.append(path)
    s = _sim_rows(sim, 1.0)
    path, dropped["fig1_simulation.csv"] = write_csv(
        os.path.join(out, "fig1_simulation.csv"),
        ["lam_t", "temperature", "n_features", "seeds", "first_seed", "student_error_mean",
         "student_error_sem", "teacher_error_mean", "teacher_error_sem", "student_error_theory",
         "teacher_error_theory"],
        [(s["lam_t"][k], s["temperature"][k], sim["n_features"], s["seeds"][k], s["first_seed"][k],
          s["student_mean"][k], s["student_sem"][k], s["teacher_mean"][k], s["teacher_sem"][k],
          s["student_theory"][k], s["teacher_theory"][k]) for k in range(s["lam_t"].size)])
    paths.append(path)

    fig, axes = _figure(size=(7.6, 5.6))
    ax = axes[0, 0]
    temps = r["temperature"]
    colors = _colors(temps.size)
    for j, (T, c) in enumerate(zip(temps, colors)):
        ax.plot(r["lam_t"], r["student_error"][:, j], "-", color=c, lw=1.8,
                label=f"KD student, $T={T:g}$")
    ax.plot(r["lam_t"], r["teacher_error"], "k--", lw=2.0, label="teacher")
    if np.isfinite(f2["lam_t_teacher"]):
        ax.plot([f2["lam_t_teacher"]], [f2["teacher_best_error"]], "*", color="k", ms=11,
                label=f"teacher's optimum, {LAM_T}={_g(float(f2['lam_t_teacher']))}")
    ax.axhline(r["hard_unreg_error"], color="tab:red", ls=":", lw=2.0,
               label=f"hard labels ($a=1$), {LAM_S}$={_g(float(r['hard_lam_s0']))}$")
    ax.axhline(r["hard_best_error"], color="tab:red", ls="-.", lw=1.8,
               label=f"hard labels, optimal {LAM_S}$={_g(float(r['hard_best_lam_s']))}$")
    ax.axhline(r["student_bayes_error"], color="0.45", ls=(0, (5, 2, 1, 2)), lw=1.4,
               label=f"Bayes-optimal on the student's {GAMMA}N inputs")
    ax.axhline(r["bayes_error"], color="0.45", ls="-", lw=1.4, label="Bayes-optimal")
    ok = np.isfinite(s["student_mean"])
    if ok.any():
        k = int(np.argmin(np.abs(np.log(temps / p.sim_temperature))))
        ax.errorbar(s["lam_t"][ok], s["student_mean"][ok], yerr=s["student_sem"][ok], fmt="o",
                    color=colors[k], mec="k", ms=6, capsize=3, zorder=5,
                    label=f"student $T={p.sim_temperature:g}$, " + SIM_LABEL.format(n=p.sim_n_features))
        ax.errorbar(s["lam_t"][ok], s["teacher_mean"][ok], yerr=s["teacher_sem"][ok], fmt="s",
                    color="k", mfc="white", ms=6, capsize=3, zorder=5,
                    label="teacher, " + SIM_LABEL.format(n=p.sim_n_features))
    ax.set_xscale("log")
    ax.set_xlabel(f"teacher's regularisation {LAM_T}")
    ax.set_ylabel(f"test error {EPS}")
    ax.set_title(f"Inheriting the regularisation: KD student {GAMMA}={p.gamma:g}, "
                 f"$\\lambda_s=0$, $a=0$\n({ALPHA}={p.alpha:g}, $\\Delta$={p.delta:g}, "
                 f"$\\rho$={p.rho:g}, logistic teacher)", fontsize=11)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.grid(alpha=0.3, which="both")
    paths.append(_save(fig, os.path.join(out, "fig1_inheritance.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 2


def figure2(res, out):
    r, f4 = res["limited"], res["temperature"]
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
         "student_by_gradient", "lam_t_teacher", "teacher_best_error", "teacher_by_gradient",
         "student_error_at_lam_t_teacher"],
        zip(r["opt_temperature"], r["lam_t_student"], r["student_error_at_lam_t_student"],
            r["teacher_error_at_lam_t_student"], r["student_by_gradient"],
            [r["lam_t_teacher"]] * n, [r["teacher_best_error"]] * n,
            [r["teacher_by_gradient"]] * n, r["student_error_at_lam_t_teacher"]))
    paths.append(path)

    fig, axes = _figure(2, size=(6.0, 4.9))
    ax = axes[0, 0]
    ok = np.isfinite(r["teacher_error"]) & np.isfinite(r["student_best_error"])
    x, y, lt = r["teacher_error"][ok], r["student_best_error"][ok], r["lam_t"][ok]
    ax.plot(x, y, "-", color="0.6", lw=1, zorder=1)
    sc = ax.scatter(x, y, c=np.log10(lt), cmap="viridis", s=45, edgecolors="k", zorder=2)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(r"teacher's regularisation $\log_{10}\lambda_t$")
    if x.size:
        k = int(np.argmin(x))
        ax.scatter([x[k]], [y[k]], s=180, facecolors="none", edgecolors="tab:red", lw=2,
                   label=f"best teacher of the grid ({LAM_T}={lt[k]:.3g})", zorder=3)
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], ":", color="0.3",
                label=r"$\epsilon_g^{\rm student}=\epsilon_g^{\rm teacher}$")
    if np.isfinite(r["hard_best_error"]):
        ax.axhline(r["hard_best_error"], color="tab:red", ls="-.", lw=1.5,
                   label=f"hard labels, optimal {LAM_S}")
    ax.set_xlabel(r"teacher's test error $\epsilon_g^{\rm teacher}$")
    ax.set_ylabel(r"student's best error over the $T$ grid, $\min_T\epsilon_g^{\rm student}$")
    ax.set_title("Student limited by its teacher\n(one point per teacher " + LAM_T +
                 r"; student $\lambda_s=0$, $a=0$)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[0, 1]
    temps = r["opt_temperature"]
    ok = np.isfinite(r["lam_t_student"])
    grad = ok & (r["student_by_gradient"] > 0)
    ax.plot(temps[ok], r["lam_t_student"][ok], "-", color="tab:blue", lw=1.5)
    if grad.any():
        ax.plot(temps[grad], r["lam_t_student"][grad], "o", color="tab:blue", ms=7,
                label=f"{LAM_T} best for the student at fixed {T_} (gradient)")
    grid_only = ok & ~grad
    if grid_only.any():
        ax.plot(temps[grid_only], r["lam_t_student"][grid_only], "o", mfc="white",
                color="tab:blue", ms=7, label=f"{LAM_T} best for the student at fixed {T_} (grid)")
    how = "gradient" if float(r["teacher_by_gradient"]) else "grid"
    ax.axhline(r["lam_t_teacher"], color="k", ls="--",
               label=f"{LAM_T} best for the teacher itself ({_g(float(r['lam_t_teacher']))}, {how})")
    vals = list(r["lam_t_student"][ok]) + [float(r["lam_t_teacher"])]
    p = res["plan"]
    ia = np.flatnonzero(np.isclose(f4["map_alpha"], p.alpha))
    ig = np.flatnonzero(np.isclose(f4["map_gamma"], p.gamma))
    if ia.size and ig.size and np.isfinite(f4["opt_lam_t"][ia[0], ig[0]]):
        lj, Tj = float(f4["opt_lam_t"][ia[0], ig[0]]), float(f4["opt_temperature"][ia[0], ig[0]])
        how = "gradient" if f4["opt_by_gradient"][ia[0], ig[0]] else "grid"
        ax.plot([Tj], [lj], "*", color="tab:orange", mec="k", ms=15, zorder=4,
                label=f"best ({LAM_T}, {T_}) for the student jointly ({how})")
        vals.append(lj)
        temps = np.append(temps, Tj)
    ax.set_xscale("log")
    ax.set_yscale("log")
    vals = np.asarray(vals, float)
    vals = vals[np.isfinite(vals)]
    if vals.size:
        ax.set_ylim(vals.min() / 1.6, vals.max() * 2.2)
    _plain_log_labels(ax.yaxis)
    ax.set_xlim(temps.min() / 1.5, temps.max() * 1.5)
    _plain_log_ticks(ax.xaxis, temps.min() / 1.5, temps.max() * 1.5)
    ax.set_xlabel(f"temperature {T_}")
    ax.set_ylabel(f"optimal teacher regularisation {LAM_T}")
    ax.set_title("Which teacher is best: for itself or for its student?\n"
                 f"({ALPHA}={p.alpha:g}, {GAMMA}={p.gamma:g})", fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, which="both")
    paths.append(_save(fig, os.path.join(out, "fig2_limited_by_teacher.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 3


def _curve_style(curve, p):
    """(colour, line style, label) of a figure-3 curve."""
    small = curve["lam_s"] == p.dd_lam_s_small
    if curve["hard_weight"] >= 1.0:
        color = "tab:red"
    elif curve["lam_t"] != p.dd_lam_t:
        color = "tab:green"
    else:
        color = "tab:blue"
    label = curve["label"]
    if curve["hard_weight"] < 1.0:
        label += f", {LAM_T}={curve['lam_t']:g}"
    label += f", {LAM_S}={curve['lam_s']:g}"
    return color, "-" if small else "--", label


def figure3(res, out):
    r, p, sim = res["double_descent"], res["plan"], res["simulation"]
    paths, dropped = [], {}
    rows = []
    for c in range(len(r["curves"])):
        for i, alpha in enumerate(r["alpha"]):
            rows.append((alpha, r["lam_t"][c], r["hard_weight"][c], r["lam_s"][c], r["fresh"][c],
                         r["student_error"][c, i], r["teacher_error"][c, i]))
    path, dropped["fig3_double_descent.csv"] = write_csv(
        os.path.join(out, "fig3_double_descent.csv"),
        ["alpha", "lam_t", "hard_weight", "lam_s", "fresh", "student_error", "teacher_error"], rows)
    paths.append(path)
    path, dropped["fig3_peaks.csv"] = write_csv(
        os.path.join(out, "fig3_peaks.csv"),
        ["lam_t", "hard_weight", "lam_s", "fresh", "predicted_threshold", "error_at_predicted",
         "max_alpha", "max_error", "has_interior_peak"],
        [(r["lam_t"][c], r["hard_weight"][c], r["lam_s"][c], r["fresh"][c],
          r["predicted_threshold"][c], r["error_at_predicted"][c], r["max_alpha"][c],
          r["max_error"][c], 1.0 if np.isfinite(r["peak_alpha"][c]) else 0.0)
         for c in range(len(r["curves"]))])
    paths.append(path)
    s = _sim_rows(sim, 3.0)
    path, dropped["fig3_simulation.csv"] = write_csv(
        os.path.join(out, "fig3_simulation.csv"),
        ["alpha", "lam_t", "hard_weight", "lam_s", "n_features", "seeds", "first_seed",
         "student_error_mean", "student_error_sem", "student_error_theory"],
        [(s["alpha"][k], s["lam_t"][k], s["hard_weight"][k], s["lam_s"][k], sim["n_features"],
          s["seeds"][k], s["first_seed"][k], s["student_mean"][k], s["student_sem"][k],
          s["student_theory"][k]) for k in range(s["alpha"].size)])
    paths.append(path)

    fig, axes = _figure(2, size=(6.2, 5.6))
    for panel, fresh in enumerate((False, True)):
        ax = axes[0, panel]
        for c, curve in enumerate(r["curves"]):
            is_fresh = curve["data"] == "fresh"
            hard = curve["hard_weight"] >= 1.0
            if not hard and is_fresh != fresh:
                continue
            color, ls, label = _curve_style(curve, p)
            if hard and fresh:
                label += " (as left)"
            ok = np.isfinite(r["student_error"][c])
            ax.plot(r["alpha"][ok], r["student_error"][c][ok], ls, marker=".", color=color, lw=1.8,
                    alpha=0.45 if hard and fresh else 1.0, label=label)
        c0 = 0  # the reference teacher (lam_t = dd_lam_t)
        ok = np.isfinite(r["teacher_error"][c0])
        ax.plot(r["alpha"][ok], r["teacher_error"][c0][ok], "k:", lw=1.5,
                label=f"teacher, {LAM_T}={p.dd_lam_t:g}")
        ax.axvline(p.gamma, color="tab:blue", lw=1.0, ls=(0, (1, 3)))
        ax.axvline(r["hard_separability_alpha"], color="tab:red", lw=1.0, ls=(0, (1, 3)))
        top = np.nanmax(r["student_error"])
        ax.text(p.gamma, top + 0.004, f" {ALPHA}={GAMMA}", color="tab:blue", fontsize=9,
                va="bottom", ha="center")
        ax.text(r["hard_separability_alpha"], top + 0.004,
                GAMMA + ALPHA + r"$^*(\Delta/\gamma,\rho)$", color="tab:red", fontsize=9,
                va="bottom", ha="center")
        ax.set_ylim(None, top + 0.025)
        if not fresh:
            sel = np.isfinite(s["student_mean"])
            for k in np.flatnonzero(sel):
                match = [c for c, cv in enumerate(r["curves"]) if cv["data"] == "same"
                         and cv["hard_weight"] == s["hard_weight"][k] and cv["lam_s"] == s["lam_s"][k]
                         and cv["lam_t"] == s["lam_t"][k]]
                color = _curve_style(r["curves"][match[0]], p)[0] if match else "tab:orange"
                ax.errorbar([s["alpha"][k]], [s["student_mean"][k]], yerr=[s["student_sem"][k]],
                            fmt="o", color=color, mec="k", ms=6.5, capsize=3, zorder=5)
            if sel.any():
                ax.plot([], [], "o", color="0.6", mec="k", ms=6.5,
                        label=SIM_LABEL.format(n=p.sim_n_features) + ", colour of its curve")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, r["alpha"].min(), r["alpha"].max())
        ax.set_xlabel(f"samples per input dimension {ALPHA}" + (r" $=\alpha_s$" if fresh else ""))
        ax.set_ylabel(f"student test error {EPS}")
        ax.set_title(("Fresh inputs: the student learns from $\\alpha_s N$ new inputs" if fresh else
                      "Same inputs: the student learns from the teacher's training set")
                     + f"\n{GAMMA}={p.gamma:g}, {T_}={p.dd_temperature:g}", fontsize=11)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
        ax.grid(alpha=0.3, which="major")
    paths.append(_save(fig, os.path.join(out, "fig3_double_descent.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 4


FLAT = 1e-4  # error change between T*/2 and 2T* below which T* is called ill-determined


def _heatmap(fig, ax, values, xs, ys, title, fmt, cmap, log=False, notes=None):
    from matplotlib.colors import LogNorm

    data = np.ma.masked_invalid(values)
    finite = values[np.isfinite(values)]
    norm = None
    if log and finite.size and finite.min() > 0 and finite.max() > finite.min() * 1.01:
        norm = LogNorm()
    im = ax.imshow(data, origin="lower", cmap=cmap, aspect="auto", norm=norm)
    cbar = fig.colorbar(im, ax=ax)
    if norm is not None:
        _plain_log_labels(cbar.ax.yaxis, leads=tuple(float(k) for k in range(1, 10)))
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(f"student size {GAMMA} (fraction of the N inputs it sees)")
    ax.set_ylabel(f"samples per input dimension {ALPHA}")
    ax.set_title(title, fontsize=11)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = fmt(v) if np.isfinite(v) else "n/a"
            if notes is not None and notes[i][j]:
                text += f"\n{notes[i][j]}"
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color="w",
                    fontweight="bold", path_effects=_outline())


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
                         r["opt_by_gradient"][i, j], r["opt_temperature_sensitivity"][i, j],
                         r["teacher_error_at_opt"][i, j],
                         r["lam_t_teacher"][i], r["teacher_best_error"][i],
                         r["teacher_by_gradient"][i]))
    path, dropped["fig4_optimal_map.csv"] = write_csv(
        os.path.join(out, "fig4_optimal_map.csv"),
        ["alpha", "gamma", "opt_lam_t", "opt_temperature", "opt_student_error", "by_gradient",
         "error_increase_at_half_or_double_T", "teacher_error_at_opt", "lam_t_teacher",
         "teacher_best_error", "teacher_by_gradient"], rows)
    paths.append(path)

    fig, axes = _figure(2, 2, size=(6.0, 4.8))
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
    ax.set_title(f"Student error vs temperature, one curve per teacher\n({ALPHA}={p.alpha:g}, "
                 f"{GAMMA}={p.gamma:g}, " r"$\lambda_s=0$, $a=0$)", fontsize=11)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(alpha=0.3, which="major")
    how = "gradient, optimize_kd" if float(r["gradient"]) else "best grid point, --quick"
    sens = r["opt_temperature_sensitivity"]
    notes = [["flat" if np.isfinite(v) and v < FLAT else "" for v in row] for row in sens]
    for i, row in enumerate(r["opt_by_gradient"]):
        for j, by in enumerate(row):
            if float(r["gradient"]) and not by:
                notes[i][j] = (notes[i][j] + ", grid").lstrip(", ")
    _heatmap(fig, axes[0, 1], r["opt_temperature"], r["map_gamma"], r["map_alpha"],
             f"optimal temperature {T_}* ({how})\nflat: {EPS} changes by < {FLAT:g} "
             f"between {T_}*/2 and 2{T_}*", lambda v: f"{v:.2g}", "magma", log=True, notes=notes)
    _heatmap(fig, axes[1, 0], r["opt_lam_t"], r["map_gamma"], r["map_alpha"],
             f"optimal teacher regularisation {LAM_T}* (jointly with {T_}*)", lambda v: f"{v:.2g}",
             "viridis", log=True)
    _heatmap(fig, axes[1, 1], r["opt_error"], r["map_gamma"], r["map_alpha"],
             f"student's test error at the optimum {EPS}*", lambda v: f"{v:.3f}", "cividis")
    paths.append(_save(fig, os.path.join(out, "fig4_temperature.png")))
    return paths, dropped


# --------------------------------------------------------------------------- figure 5


def _z(mean, theory, sem):
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(mean) - np.asarray(theory)) / np.asarray(sem)


def figure5(res, out):
    s, p = res["simulation"], res["plan"]
    paths, dropped = [], {}
    header = ["figure", "alpha", "lam_t", "temperature", "hard_weight", "lam_s", "n_features",
              "seeds", "first_seed", "student_error_theory", "student_error_mean",
              "student_error_sem", "teacher_error_theory", "teacher_error_mean", "teacher_error_sem"]
    rows = [(s["figure"][k], s["alpha"][k], s["lam_t"][k], s["temperature"][k], s["hard_weight"][k],
             s["lam_s"][k], s["n_features"], s["seeds"][k], s["first_seed"][k],
             s["student_theory"][k], s["student_mean"][k], s["student_sem"][k],
             s["teacher_theory"][k], s["teacher_mean"][k], s["teacher_sem"][k])
            for k in range(s["figure"].size)]
    path, dropped["fig5_theory_vs_simulation.csv"] = write_csv(
        os.path.join(out, "fig5_theory_vs_simulation.csv"), header, rows)
    paths.append(path)

    fig, axes = _figure(size=(6.0, 5.4))
    ax = axes[0, 0]
    ok = np.isfinite(s["student_mean"]) & np.isfinite(s["student_theory"])
    for fig_id, marker, label in ((1.0, "o", "student, points of figure 1"),
                                  (3.0, "D", "student, points of figure 3")):
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
    ax.set_xlabel(f"exact asymptotic theory {EPS} ($N\\to\\infty$)")
    ax.set_ylabel(f"simulation {EPS} (N={p.sim_n_features}, mean $\\pm$ s.e.m.)")
    ax.set_title(f"Theory vs simulation ({p.sim_seeds} independent seeds per point)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
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


def _by(flag):
    return "gradient" if float(flag) else "grid"


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
        "this report; eps_g is the test (generalisation) error, a probability.")
    add("")
    run = ("`--quick` (coarse grids; the student optima come from grids, not gradients)"
           if p.quick else "default")
    add(f"Run: {run}; "
        f"mixture alpha = {p.alpha:g}, Delta = {p.delta:g}, rho = {p.rho:g}; logistic teacher; "
        f"student gamma = {p.gamma:g} (it sees {p.gamma:g} N of the N coordinates). rho = 0.3 "
        "(unbalanced clusters) is used because with rho = 0.5 the teacher's error decreases "
        "monotonically in lam_t towards the Bayes-optimal error (its best lam_t is infinite), "
        "which hides the question of figure 2. Optima marked *gradient* come from "
        "`kdjax.optimize_kd` / `best_teacher` started at the best grid point.")
    add("")

    # ---- figure 1
    kd = f1["student_error"]
    temps, lam_t = f1["temperature"], f1["lam_t"]
    i_best, j_best = np.unravel_index(np.nanargmin(kd), kd.shape)
    kd_best = float(kd[i_best, j_best])
    hu, hb = float(f1["hard_unreg_error"]), float(f1["hard_best_error"])
    t_err = f1["teacher_error"]
    it = int(np.nanargmin(t_err))
    add("## Figure 1 - inheriting the regularisation (`fig1_inheritance.png`)")
    add("")
    add("**Paper's claim.** A student trained on the soft labels of a regularised teacher inherits "
        "the teacher's regularisation: with no regularisation of its own it generalises better "
        "than the same student trained on the hard labels without regularisation, the more so the "
        "better regularised the teacher.")
    add("")
    add("**kdjax finds** (KD student: a = 0, lam_s = 0; data `fig1_kd_student.csv`, "
        "`fig1_hard_student.csv`, `fig1_reference.csv`):")
    add("")
    add(f"- Hard-label student (a = 1): unregularised (lam_s = {_g(float(f1['hard_lam_s0']))}) "
        f"eps_g = {_fmt(hu)}; optimally regularised (lam_s* = {_g(float(f1['hard_best_lam_s']))}, "
        f"{_by(f1['hard_best_by_gradient'])}) eps_g = {_fmt(hb)}.")
    add("- The KD student's error falls as its teacher is regularised, at every temperature:")
    add("")
    add(f"  | T | eps_g, teacher lam_t = {lam_t[0]:.3g} | best eps_g over lam_t | at lam_t |")
    add("  | --- | --- | --- | --- |")
    for j, T in enumerate(temps):
        col = kd[:, j]
        if np.isfinite(col).any():
            k = int(np.nanargmin(col))
            add(f"  | {T:g} | {_fmt(float(col[0]))} | {_fmt(float(col[k]))} | {lam_t[k]:.3g} |")
    add("")
    gap = "beyond it" if kd_best < hb else f"{_fmt(kd_best - hb)} short of it"
    share = (f", i.e. {100 * (hu - kd_best) / (hu - hb):.0f}% of the way from the unregularised to "
             f"the optimally regularised hard-label student ({gap})." if hu > hb else ".")
    add(f"- Best KD student of the grid: eps_g = {_fmt(kd_best)} (teacher lam_t = "
        f"{lam_t[i_best]:.3g}, T = {temps[j_best]:g}), {_fmt(hu - kd_best)} below the unregularised "
        f"hard-label student{share}")
    add(f"- Teacher: minimal error {_fmt(float(t_err[it]))} on the grid at lam_t = "
        f"{lam_t[it]:.3g}; optimum lam_t = {_g(float(f2['lam_t_teacher']))} "
        f"({_by(f2['teacher_by_gradient'])}), eps_g = {_fmt(float(f2['teacher_best_error']))}. "
        f"Bayes-optimal error {_fmt(float(f1['bayes_error']))} on the full input, "
        f"{_fmt(float(f1['student_bayes_error']))} with the student's gamma N coordinates only "
        "(a lower bound for every student here).")
    last = kd[-1][np.isfinite(kd[-1])]
    if last.size and np.isfinite(t_err[-1]):
        add(f"- Inheritance works both ways: behind the most regularised teacher (lam_t = "
            f"{lam_t[-1]:.3g}, eps_t = {_fmt(float(t_err[-1]))}) the student errs "
            f"{_fmt(float(last.min()))}...{_fmt(float(last.max()))}.")
    add(f"- Verdict: **reproduced**. The unregularised KD student inherits its teacher's "
        f"regularisation; here it does {'not ' if kd_best >= hb else ''}reach the optimally "
        "regularised hard-label student.")
    add("")

    # ---- figure 2
    add("## Figure 2 - the student is limited by its teacher (`fig2_limited_by_teacher.png`)")
    add("")
    add("**Paper's claim.** The student's performance is closely linked to and limited by the "
        "optimality of its teacher: the better the teacher, the better the best student.")
    add("")
    te, sb = f2["teacher_error"], f2["student_best_error"]
    rho_s = _spearman(te, sb)
    ok = np.isfinite(te) & np.isfinite(sb)
    k_t = int(np.nanargmin(np.where(ok, te, np.nan)))
    k_s = int(np.nanargmin(np.where(ok, sb, np.nan)))
    add("**kdjax finds** (`fig2_best_over_temperature.csv`, `fig2_optimal_lam_t.csv`):")
    add("")
    add(f"- Over {int(ok.sum())} teachers (lam_t = {f2['lam_t'][0]:.3g}..{f2['lam_t'][-1]:.3g}, "
        f"teacher errors {_fmt(float(np.nanmin(te)))}..{_fmt(float(np.nanmax(te)))}), the Spearman "
        f"rank correlation between the teacher's error and its student's best error over the T "
        f"grid is {_g(rho_s, 3)}.")
    add(f"- The best teacher of the grid (lam_t = {f2['lam_t'][k_t]:.3g}, eps_t = "
        f"{_fmt(float(te[k_t]))}) gives a student eps_g = {_fmt(float(sb[k_t]))}; the best student "
        f"of the grid (eps_g = {_fmt(float(sb[k_s]))}) has the teacher lam_t = "
        f"{f2['lam_t'][k_s]:.3g} (eps_t = {_fmt(float(te[k_s]))}).")
    below = ok & (sb < te)
    add(f"- The best student beats its own teacher for {int(below.sum())} of {int(ok.sum())} "
        "teachers" + (f" (lam_t in {{{', '.join(f'{x:.3g}' for x in f2['lam_t'][below])}}}: "
                      "over-regularised teachers only)." if below.any() else "."))
    add(f"- The teacher's own optimum is lam_t = {_g(float(f2['lam_t_teacher']))} "
        f"({_by(f2['teacher_by_gradient'])}, eps_t = {_fmt(float(f2['teacher_best_error']))}). "
        "The lam_t that minimises the student's error, at fixed T:")
    add("")
    add("  | T | lam_t best for the student | found by | student eps_g there | student eps_g at "
        "the teacher's optimum | teacher eps_g at the student's lam_t |")
    add("  | --- | --- | --- | --- | --- | --- |")
    for k, T in enumerate(f2["opt_temperature"]):
        add(f"  | {T:g} | {_g(float(f2['lam_t_student'][k]))} | "
            f"{_by(f2['student_by_gradient'][k])} | "
            f"{_fmt(float(f2['student_error_at_lam_t_student'][k]))} | "
            f"{_fmt(float(f2['student_error_at_lam_t_teacher'][k]))} | "
            f"{_fmt(float(f2['teacher_error_at_lam_t_student'][k]))} |")
    add("")
    ratios = f2["lam_t_student"] / float(f2["lam_t_teacher"])
    cost = f2["student_error_at_lam_t_teacher"] - f2["student_error_at_lam_t_student"]
    if np.isfinite(ratios).any():
        add(f"- lam_t(student) / lam_t(teacher) = {_g(np.nanmin(ratios))}...{_g(np.nanmax(ratios))}: "
            f"the student asks for a {'more' if np.nanmin(ratios) > 1 else 'differently'} regularised "
            f"teacher than the one best on its own, but distilling from the teacher's own optimum "
            f"costs the student only {_fmt(np.nanmin(cost), 5)}...{_fmt(np.nanmax(cost), 5)} in "
            f"test error (the most at T = {f2['opt_temperature'][int(np.nanargmax(cost))]:g}).")
    ia = np.flatnonzero(np.isclose(f4["map_alpha"], p.alpha))
    ig = np.flatnonzero(np.isclose(f4["map_gamma"], p.gamma))
    if ia.size and ig.size:
        i, j = ia[0], ig[0]
        add(f"- Jointly over (lam_t, T) ({_by(f4['opt_by_gradient'][i, j])}): lam_t* = "
            f"{_g(float(f4['opt_lam_t'][i, j]))}, T* = {_g(float(f4['opt_temperature'][i, j]))}, "
            f"student eps_g = {_fmt(float(f4['opt_error'][i, j]))}, its teacher's eps_t = "
            f"{_fmt(float(f4['teacher_error_at_opt'][i, j]))}.")
    add(f"- Verdict: **reproduced**. The best student follows the quality of its teacher (rank "
        f"correlation {_g(rho_s, 2)}) and is optimal behind a near-optimal teacher.")
    add("")

    # ---- figure 3
    add("## Figure 3 - double descent (`fig3_double_descent.png`)")
    add("")
    add("**Paper's claim.** A student with (almost) no regularisation has a peak of its test "
        "error where it can first fit its training targets exactly: with soft labels where the "
        "samples equal the student's weights, alpha = gamma; with hard labels where its data stop "
        "being linearly separable. Regularisation (of the student, or through KD of the teacher) "
        "damps the peak.")
    add("")
    add(f"**kdjax finds** (T = {p.dd_temperature:g}, alpha on {len(f3['alpha'])} points from "
        f"{f3['alpha'][0]:.3g} to {f3['alpha'][-1]:.3g}; `fig3_double_descent.csv`, "
        "`fig3_peaks.csv`):")
    add("")
    add("  | curve | teacher lam_t | lam_s | predicted threshold | eps_g there | highest point "
        "(alpha, eps_g) |")
    add("  | --- | --- | --- | --- | --- | --- |")
    for c, curve in enumerate(f3["curves"]):
        pa, pe = float(f3["peak_alpha"][c]), float(f3["peak_error"][c])
        where = f"{_g(pa)}, {_fmt(pe)}" if np.isfinite(pa) else "none inside the grid (monotone)"
        lt_txt = "-" if curve["hard_weight"] >= 1 else f"{curve['lam_t']:g}"
        add(f"  | {curve['label']}{'' if curve['hard_weight'] < 1 else ' (a = 1)'} | {lt_txt} | "
            f"{curve['lam_s']:g} | {_g(float(f3['predicted_threshold'][c]))} | "
            f"{_fmt(float(f3['error_at_predicted'][c]))} | {where} |")
    add("")
    add(f"- Predicted thresholds: alpha = gamma = {p.gamma:g} (soft labels); the hard-label "
        f"student's separability threshold gamma alpha*(Delta/gamma, rho) = "
        f"{_g(float(f3['hard_separability_alpha']))} (the teacher's own: "
        f"{_g(float(f3['teacher_separability_alpha']))}). The grid contains alpha = "
        + ", ".join(f"{f:g}" for f in p.dd_refine) + " x each threshold.")
    err, alphas = f3["student_error"], f3["alpha"]
    kd_small, kd_strong, hard_small = 0, 2, 5  # curve order of reproduce.double_descent_curves
    pk = float(f3["peak_alpha"][kd_small])
    if np.isfinite(pk):
        add(f"- KD moves the peak: with lam_s = {p.dd_lam_s_small:g} the soft-label student peaks "
            f"at alpha = {_g(pk)} (eps_g = {_fmt(float(f3['peak_error'][kd_small]))}, above the "
            f"error {min(p.rho, 1 - p.rho):g} of always guessing the larger class), not at the "
            "hard-label threshold.")
    if np.isfinite(f3["error_at_predicted"][kd_strong]):
        add(f"- The teacher's regularisation damps it: behind a teacher with lam_t = "
            f"{p.dd_lam_t_strong:g} the same student reaches eps_g = "
            f"{_fmt(float(f3['error_at_predicted'][kd_strong]))} at alpha = gamma instead of "
            f"{_fmt(float(f3['error_at_predicted'][kd_small]))}.")
    star = float(f3["hard_separability_alpha"])
    below = (alphas < 0.999 * star) & np.isfinite(err[hard_small])
    above = np.flatnonzero((alphas >= 0.999 * star) & np.isfinite(err[hard_small]))
    if below.sum() >= 2 and above.size:
        seg = err[hard_small][below]
        after = ", ".join(f"{_fmt(float(err[hard_small][k]))} at alpha = {_g(float(alphas[k]))}"
                          for k in above[:3])
        add(f"- Hard labels, lam_s = {p.dd_lam_s_small:g}: while the student's data are separable "
            f"(alpha < {_g(star)}) the error stays on a plateau, {_fmt(seg.min())}...{_fmt(seg.max())} "
            "(the lam_s -> 0 student is the max-margin classifier there); from the threshold on "
            f"it falls ({after}): the hard-label peak is this cusp at the separability threshold.")
    regs = [c for c, curve in enumerate(f3["curves"]) if curve["lam_s"] == p.dd_lam_s_reg]
    mono = [c for c in regs if not np.isfinite(f3["peak_alpha"][c])]
    add(f"- With lam_s = {p.dd_lam_s_reg:g}, {len(mono)} of {len(regs)} curves have no interior "
        "maximum: student regularisation removes the peaks.")
    c_fresh = 3
    if np.isfinite(f3["error_at_predicted"][c_fresh]):
        add(f"- Fresh inputs (the student learns from alpha_s N new inputs labelled by the teacher): "
            f"same threshold alpha_s = gamma, eps_g = {_fmt(float(f3['error_at_predicted'][c_fresh]))} "
            f"there vs {_fmt(float(f3['error_at_predicted'][kd_small]))} on the teacher's own inputs.")
    n_nan = int(np.sum(~np.isfinite(f3["student_error"])))
    add(f"- Points left out (solve not converged or no finite minimiser): {n_nan} of "
        f"{f3['student_error'].size}.")
    add("- Verdict: **reproduced**. The interpolation peak sits at alpha = gamma for soft labels "
        "and at the separability threshold for hard labels; KD moves it, and regularisation "
        "(the student's, or the teacher's through KD) damps or removes it.")
    add("")

    # ---- figure 4
    add("## Figure 4 - the temperature (`fig4_temperature.png`)")
    add("")
    add("**Question.** How does the student's error depend on T, and which (lam_t, T) is optimal "
        "as the sample ratio alpha and the student size gamma change?")
    add("")
    add("**kdjax finds** (`fig4_error_vs_temperature.csv`, `fig4_optimal_map.csv`):")
    add("")
    add("- Best T of the grid at each teacher: "
        + ", ".join(f"lam_t = {lt:.3g}: T = {_g(float(T))}" for lt, T in
                    zip(f2["lam_t"], f2["best_temperature"]) if np.isfinite(T)) + ".")
    spread = np.nanmax(f4["student_error"], axis=1) - np.nanmin(f4["student_error"], axis=1)
    add(f"- The error changes by {_fmt(np.nanmin(spread), 4)}...{_fmt(np.nanmax(spread), 4)} "
        "across the T grid at fixed lam_t: high temperatures help behind under-regularised "
        "teachers, low ones behind over-regularised teachers (their soft labels are then close "
        "to the hard labels).")
    how = ("by gradient (`optimize_kd(free=(\"lam_t\", \"temperature\"))`), started from the best "
           "point of a small grid" if float(f4["gradient"]) else
           "as the best point of a small grid (`--quick` skips the student's gradient searches)")
    add(f"- Optimal recipe over (alpha, gamma), found {how}:")
    add("")
    add("  | alpha | gamma | lam_t* | T* | student eps_g | found by | eps_g rise at T*/2 or 2T* "
        "| teacher eps_t at lam_t* | teacher's own best lam_t |")
    add("  | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sens = f4["opt_temperature_sensitivity"]
    for i, a in enumerate(f4["map_alpha"]):
        for j, g in enumerate(f4["map_gamma"]):
            add(f"  | {a:g} | {g:g} | {_g(float(f4['opt_lam_t'][i, j]))} | "
                f"{_g(float(f4['opt_temperature'][i, j]))} | {_fmt(float(f4['opt_error'][i, j]))} | "
                f"{_by(f4['opt_by_gradient'][i, j])} | {_g(float(sens[i, j]), 2)} | "
                f"{_fmt(float(f4['teacher_error_at_opt'][i, j]))} | {_g(float(f4['lam_t_teacher'][i]))} |")
    add("")
    ratio = f4["opt_lam_t"] / f4["lam_t_teacher"][:, None]
    if np.isfinite(ratio).any():
        add(f"- T* ranges over {_g(np.nanmin(f4['opt_temperature']))}..."
            f"{_g(np.nanmax(f4['opt_temperature']))}; lam_t* is {_g(np.nanmin(ratio))}..."
            f"{_g(np.nanmax(ratio))} times the teacher's own optimal lam_t, and the teacher the "
            f"student calls for errs at most "
            f"{_fmt(np.nanmax(f4['teacher_error_at_opt'] - f4['teacher_best_error'][:, None]), 4)} "
            "more than the best teacher.")
    flat = np.isfinite(sens) & (sens < FLAT)
    if flat.any():
        cells = ", ".join(f"({f4['map_alpha'][i]:g}, {f4['map_gamma'][j]:g})"
                          for i, j in zip(*np.nonzero(flat)))
        add(f"- At (alpha, gamma) = {cells} the error changes by less than {FLAT:g} between T*/2 "
            "and 2T* (marked 'flat' in the figure): there T* is ill-determined, any T in that "
            "range is as good.")
    err = f4["opt_error"]
    if np.isfinite(err).all() and err.shape[1] > 1 and err.shape[0] > 1:
        by_gamma = bool(np.all(np.diff(err, axis=1) < 0))
        by_alpha = bool(np.all(np.diff(err, axis=0) < 0))
        word = lambda ok: "decreases" if ok else "does not always decrease"
        add(f"- The optimal student's error {word(by_gamma)} with its size gamma at every alpha, "
            f"and {word(by_alpha)} with alpha at every gamma.")
    add("")

    # ---- figure 5
    add("## Figure 5 - theory vs simulation (`fig5_theory_vs_simulation.png`, also overlaid on "
        "figures 1 and 3)")
    add("")
    ok = np.isfinite(f5["student_mean"]) & np.isfinite(f5["student_theory"])
    z = _z(f5["student_mean"], f5["student_theory"], f5["student_sem"])
    zt = _z(f5["teacher_mean"], f5["teacher_theory"], f5["teacher_sem"])
    gap = np.nanmax(np.abs(f5["student_mean"] - f5["student_theory"])[ok]) if ok.any() else math.nan
    add(f"Simulations of exactly the same objectives at N = {int(f5['n_features'])}, "
        f"{int(f5['n_seeds'])} seeds per point, different seeds at every point "
        "(`kdjax.simulate.simulate_student`; error = MODEL.md formula at each seed's overlaps, "
        "mean +- s.e.m. over seeds; `fig5_theory_vs_simulation.csv`).")
    add("")
    if ok.any():
        chi2 = float(np.nansum(z[ok] ** 2) + np.nansum(zt[ok] ** 2))
        add(f"- {int(ok.sum())} of {f5['figure'].size} points simulated; student "
            f"|simulation - theory| <= {_fmt(gap)}; max |z| = {_g(float(np.nanmax(np.abs(z[ok]))), 3)} "
            f"(student), {_g(float(np.nanmax(np.abs(zt[ok]))), 3)} (teacher); chi2 = {chi2:.1f} for "
            f"{2 * int(ok.sum())} values (student and teacher; note that with {int(f5['n_seeds'])} "
            f"seeds the s.e.m. is itself uncertain by about "
            f"{100 / math.sqrt(2 * (f5['n_seeds'] - 1)):.0f}%).")
        k = int(np.nanargmax(np.where(ok, np.abs(z), np.nan)))
        add(f"- Largest student deviation: figure {int(f5['figure'][k])}, alpha = "
            f"{f5['alpha'][k]:g}, lam_t = {f5['lam_t'][k]:g}, T = {f5['temperature'][k]:g}, "
            f"a = {f5['hard_weight'][k]:g}, lam_s = {f5['lam_s'][k]:g}: simulation "
            f"{_fmt(float(f5['student_mean'][k]))} +- {_fmt(float(f5['student_sem'][k]))}, theory "
            f"{_fmt(float(f5['student_theory'][k]))}.")
    add("")

    # ---- checks
    add("## Sanity checks")
    add("")
    for statement, holds, detail in res["checks"]:
        add(f"- [{'x' if holds else ' '}] {statement} ({detail})")
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
    opt = res["optima"]
    add("")
    add(f"- Theory solves: {res['solves']['count']} in {res['solves']['seconds']:.0f} s; gradient "
        f"searches: {opt['calls']} ({opt['evaluations']} evaluations) in {opt['seconds']:.0f} s "
        "(compilation included).")
    for failure in opt["failures"]:
        add(f"- A gradient search failed and its grid point was kept: {failure}")
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
