"""(e) Gradient recipe search (``kdjax.optimize_kd``) vs a dense grid search (``kdjax.sweep``).

Problem: the student's exact test error as a function of the teacher's ridge ``lam_t`` and the
temperature ``T`` (alpha = 2, delta = 1; student gamma = 0.5, hard_weight a = 0.5, lam_s = 0, same
inputs; the optimum in ``lam_t`` is interior, ~0.56).

Grid: 30 x 30 (quick: 6 x 6), log-spaced ``lam_t`` in [1e-3, 10] and ``T`` in [0.3, 10], one
``kdjax.sweep`` call (its default batching); only points flagged converged count.

Gradient: ``optimize_kd(free=("lam_t", "temperature"))`` from ``lam_t = 0.01, T = 1`` (L-BFGS with
a host-side Armijo line search over one cached compiled value_and_grad).

Chain (``run(...)["chain"]``): self-distillation (every generation gamma = 1, hard weight a = 0)
over two generations on a noisy mixture (label noise 0.2, alpha = 2, rho = 0.3, logistic teacher
lam_t = 0.01), the last generation's error as a function of the per-generation (T_k, lam_k), four
free parameters.  Gradient: ``optimize_kd(free=("gen1.temperature", "gen1.lam_s",
"gen2.temperature", "gen2.lam_s"))`` from T = 1, lam = 0.01.  Grid: every point of a grid over
the same four names (one ``kdjax.sweep``) with no more points than the gradient search's solves
(log-spaced T in [0.3, 10], lam in [1e-3, 1], the axes as even as that allows).  Same inputs.

Each search is run twice (``_common.cold_warm``): the first call's wall time includes the
compilation, the second reuses the cached compiled functions.  Reported: best error found by each,
fixed-point solves, wall times.  Target: the gradient search gets within 1e-3 of the grid's best
with >= 10x fewer solves.
"""

from __future__ import annotations

from _common import cold_warm, kdjax, np

MIX = dict(alpha=2.0, delta=1.0)
STUDENT = dict(gamma=0.5, temperature=1.0, hard_weight=0.5, lam=0.0, data="same")
LAM_T = (1e-3, 10.0)
TEMP = (0.3, 10.0)
START = dict(lam_t=0.01, temperature=1.0)


def grid_search(k: int) -> dict:
    grid = dict(lam_t=np.geomspace(*LAM_T, k), temperature=np.geomspace(*TEMP, k))
    setting = (kdjax.Mixture(**MIX), kdjax.Teacher("logistic", START["lam_t"]), kdjax.Student(**STUDENT))
    res, times = cold_warm(lambda: kdjax.sweep(*setting, grid))
    err, conv = np.asarray(res.gen_error), np.asarray(res.converged)
    ok = conv & np.isfinite(err)
    i, j = np.unravel_index(np.argmin(np.where(ok, err, np.inf)), err.shape)
    return dict(
        shape=[k, k], solves=k * k, best_error=float(err[i, j]), best_lam_t=float(grid["lam_t"][i]),
        best_temperature=float(grid["temperature"][j]), converged_fraction=float(ok.mean()),
        ranges=dict(lam_t=LAM_T, temperature=TEMP),
    ) | times


CHAIN_MIX = dict(alpha=2.0, delta=1.0, rho=0.3, label_noise=0.2)  # rho = 0.3: finite optimal ridges
CHAIN_LAM_T = 0.01
CHAIN_FREE = ("gen1.temperature", "gen1.lam_s", "gen2.temperature", "gen2.lam_s")
CHAIN_RANGES = {"temperature": (0.3, 10.0), "lam_s": (1e-3, 1.0)}
CHAIN_START = dict(temperature=1.0, lam=0.01)


def chain_students(data: str, **over) -> tuple:
    kw = dict(gamma=1.0, hard_weight=0.0, data=data) | CHAIN_START | over
    if data == "fresh":
        kw["alpha"] = CHAIN_MIX["alpha"]
    return (kdjax.Student(**kw), kdjax.Student(**kw))


def axis_sizes(budget: int, n_axes: int) -> list[int]:
    """Per-axis point counts, as even as possible, whose product is the largest <= ``budget``."""
    sizes = [1] * n_axes
    while True:
        i = min(range(n_axes), key=lambda j: sizes[j])
        if int(np.prod(sizes)) // sizes[i] * (sizes[i] + 1) > budget:
            return sizes
        sizes[i] += 1


def grid_errors(mix, teacher, students, grid) -> np.ndarray:
    """Every generation's error (NaN where the chain failed) at each point of ``grid``, shape
    ``grid shape + (depth + 1,)``: one ``kdjax.sweep`` of the chain."""
    res = kdjax.sweep(mix, teacher, students, {n: list(map(float, v)) for n, v in grid.items()})
    errors = np.stack([np.asarray(res.teacher.gen_error)] + [np.asarray(g.gen_error) for g in res.generations], -1)
    return np.where(np.asarray(res.converged)[..., None], errors, np.nan)


def chain_run(quick: bool) -> dict:
    data = "same"
    mix, teacher = kdjax.Mixture(**CHAIN_MIX), kdjax.Teacher("logistic", CHAIN_LAM_T)
    students = chain_students(data)
    opt, times = cold_warm(lambda: kdjax.optimize_kd(mix, teacher, students, CHAIN_FREE,
                                                     steps=10 if quick else 30, tol=1e-8))
    path = {key: np.asarray(v).tolist() for key, v in opt.path.items()}
    gradient = dict(
        best_error=opt.gen_error, params=opt.params, solves=opt.solves, converged=opt.converged,
        start=CHAIN_START, iterations=len(path["gen_error"]) - 1, start_error=path["gen_error"][0],
        chain_errors=list(opt.chain_errors), best_depth=opt.best_depth, path=path,
    ) | times
    print(f"  recipe chain ({data}) optimize_kd: best {opt.gen_error:.6f} (start {path['gen_error'][0]:.6f}), "
          f"{opt.solves} solves, {times['seconds']:.1f} s ({times['first_call_s']:.1f} s with compile)", flush=True)

    sizes = axis_sizes(opt.solves, len(CHAIN_FREE))
    grid = {name: np.geomspace(*CHAIN_RANGES[name.split(".")[1]], k) for name, k in zip(CHAIN_FREE, sizes)}
    table, gtimes = cold_warm(lambda: grid_errors(mix, teacher, students, grid))
    err, conv = table[..., -1], np.all(np.isfinite(table), axis=-1)
    ok = conv & np.isfinite(err)
    idx = np.unravel_index(np.argmin(np.where(ok, err, np.inf)), err.shape)
    errors = [float(e) for e in table[idx]]
    grid_out = dict(
        shape=sizes, solves=int(np.prod(sizes)), best_error=float(err[idx]),
        best=dict((name, float(grid[name][i])) for name, i in zip(CHAIN_FREE, idx)),
        chain_errors=errors, converged_fraction=float(ok.mean()), ranges=CHAIN_RANGES,
    ) | gtimes
    print(f"  recipe chain grid {'x'.join(map(str, sizes))}: best {grid_out['best_error']:.6f} in "
          f"{gtimes['seconds']:.1f} s ({gtimes['first_call_s']:.1f} s with compile)", flush=True)
    return dict(
        problem=dict(mixture=CHAIN_MIX, lam_t=CHAIN_LAM_T, data=data, depth=2, gamma=1.0, hard_weight=0.0,
                     free=list(CHAIN_FREE)),
        gradient=gradient, grid=grid_out,
        error_gap_gradient_minus_grid=opt.gen_error - grid_out["best_error"],
        note="self-distillation chain; the grid has at most as many points as the gradient search used "
             "solves (one solve = the whole chain).",
    )


def run(quick: bool) -> dict:
    chain = chain_run(quick)
    k = 6 if quick else 30
    grid = grid_search(k)
    print(f"  recipe grid {k}x{k}: best {grid['best_error']:.6f} in {grid['seconds']:.1f} s "
          f"({grid['first_call_s']:.1f} s with compile)", flush=True)

    mix = kdjax.Mixture(**MIX)
    st = kdjax.Student(**(STUDENT | dict(temperature=START["temperature"])))
    opt, times = cold_warm(lambda: kdjax.optimize_kd(mix, kdjax.Teacher("logistic", START["lam_t"]), st,
                                                     ("lam_t", "temperature"), steps=15 if quick else 30, tol=1e-7))
    path = {key: np.asarray(v).tolist() for key, v in opt.path.items()}
    target = grid["best_error"] + 1e-3
    hit = [i for i, e in enumerate(path["gen_error"]) if e <= target]
    print(f"  recipe optimize_kd: best {opt.gen_error:.6f}, {opt.solves} solves, {times['seconds']:.1f} s "
          f"({times['first_call_s']:.1f} s with compile)", flush=True)
    gradient = dict(
        best_error=opt.gen_error, params=opt.params, solves=opt.solves,
        converged=opt.converged, start=START, iterations=len(path["gen_error"]) - 1,
        first_iteration_within_1e_3_of_grid=hit[0] if hit else None, path=path,
    ) | times
    within = opt.gen_error <= target
    fewer = grid["solves"] / max(opt.solves, 1)
    return dict(
        problem=dict(mixture=MIX, student=STUDENT, free=["lam_t", "temperature"]),
        grid=grid,
        gradient=gradient,
        error_gap_gradient_minus_grid=opt.gen_error - grid["best_error"],
        solves_ratio_grid_over_gradient=fewer,
        time_ratio_grid_over_gradient=grid["seconds"] / gradient["seconds"],
        time_ratio_including_compile=grid["first_call_s"] / gradient["first_call_s"],
        target="gradient within 1e-3 of the grid's best with >= 10x fewer solves",
        target_met=bool(within and fewer >= 10),
        chain=chain,
        note="gradient solves = objective evaluations (value + gradient through both fixed points, "
             "line-search trials included) plus the final eager solve. seconds: second call (compiled "
             "functions cached); first_call_s: first call, compilation included.",
    )


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
