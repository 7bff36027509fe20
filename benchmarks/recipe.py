"""(e) Gradient recipe search (``kdjax.optimize.optimize_kd``) vs a dense grid search.

Problem: the student's exact test error as a function of the teacher's ridge ``lam_t`` and the
temperature ``T`` (alpha = 2, delta = 1; student gamma = 0.5, hard_weight a = 0.5, lam_s = 0, same
inputs; the optimum in ``lam_t`` is interior, ~0.56).

Grid: 30 x 30 (quick: 6 x 6), log-spaced ``lam_t`` in [1e-3, 10] and ``T`` in [0.3, 10]; only
points flagged converged count.  On CPU the grid is a Python loop over the single jitted student
solve, because ``jit(vmap)`` of the student costs several times more per point there (grid.py), plus
its own compilation; on a GPU
(``method="vmap"``) it is one ``jit(vmap)`` call.

Gradient: ``optimize_kd(free=("lam_t", "temperature"))`` from ``lam_t = 0.01, T = 1``.  Reported:
best error found by each, number of fixed-point solves, wall time.  Target: the gradient search
gets within 1e-3 of the grid's best with >= 10x fewer solves.
"""

from __future__ import annotations

import time

from _common import jax, jnp, kdjax, np, student_jit, timed

MIX = dict(alpha=2.0, delta=1.0)
STUDENT = dict(gamma=0.5, temperature=1.0, hard_weight=0.5, lam=0.0, data="same")
LAM_T = (1e-3, 10.0)
TEMP = (0.3, 10.0)
START = dict(lam_t=0.01, temperature=1.0)


def _grid(k):
    return np.geomspace(*LAM_T, k), np.geomspace(*TEMP, k)


def grid_search(k: int, method: str):
    lams, temps = _grid(k)
    mix = kdjax.Mixture(**MIX)
    st = kdjax.Student(**STUDENT)
    L, T = np.meshgrid(lams, temps, indexing="ij")
    compile_s = 0.0
    if method == "vmap":
        point = lambda l, tt: kdjax.solve_student(mix, kdjax.Teacher("logistic", l), st.replace(temperature=tt))
        args = (jnp.asarray(L.ravel()), jnp.asarray(T.ravel()))
        t0 = time.perf_counter()
        compiled = jax.jit(jax.vmap(point)).lower(*args).compile()
        compile_s = time.perf_counter() - t0
        res, seconds = timed(compiled, *args)
        err, conv = np.asarray(res.gen_error), np.asarray(res.converged)
    else:  # Python loop over the single jitted solve (Python floats: one compilation)
        args = [(float(l), float(tt)) for l, tt in zip(L.ravel(), T.ravel())]
        make = lambda l, tt: (mix, kdjax.Teacher("logistic", l), st.replace(temperature=tt))
        _, first = timed(student_jit, *make(*args[0]))
        t0 = time.perf_counter()
        out = [student_jit(*make(*a)) for a in args]
        jax.block_until_ready(out)
        seconds = time.perf_counter() - t0
        err = np.array([float(o.gen_error) for o in out])
        conv = np.array([bool(o.converged) for o in out])
        compile_s = first  # 0 s of compilation when the suite already compiled student_jit
    ok = conv & np.isfinite(err)
    i = int(np.argmin(np.where(ok, err, np.inf)))
    return dict(
        method=method, shape=[k, k], solves=k * k, seconds=seconds, first_call_or_compile_s=compile_s,
        best_error=float(err[i]), best_lam_t=float(L.ravel()[i]), best_temperature=float(T.ravel()[i]),
        converged_fraction=float(ok.mean()),
        ranges=dict(lam_t=LAM_T, temperature=TEMP),
    )


def run(quick: bool, method: str | None = None) -> dict:
    try:
        from kdjax.optimize import optimize_kd
    except ImportError as exc:
        return dict(skipped=f"kdjax.optimize is not importable ({exc}); the script is written against "
                            "optimize_kd(mixture, teacher, student, free, *, steps, learning_rate, config)")
    method = method or ("vmap" if jax.default_backend() == "gpu" else "loop")
    k = 6 if quick else 30
    grid = grid_search(k, method)
    print(f"  recipe grid {k}x{k} ({method}): best {grid['best_error']:.6f} in {grid['seconds']:.1f} s", flush=True)

    mix = kdjax.Mixture(**MIX)
    st = kdjax.Student(**(STUDENT | dict(temperature=START["temperature"])))
    t0 = time.perf_counter()
    opt = optimize_kd(mix, kdjax.Teacher("logistic", START["lam_t"]), st, ("lam_t", "temperature"),
                      steps=15 if quick else 30, tol=1e-7)
    opt_s = time.perf_counter() - t0
    path = {key: np.asarray(v).tolist() for key, v in opt.path.items()}
    target = grid["best_error"] + 1e-3
    hit = [i for i, e in enumerate(path["gen_error"]) if e <= target]
    print(f"  recipe optimize_kd: best {opt.gen_error:.6f}, {opt.solves} solves, {opt_s:.1f} s", flush=True)
    gradient = dict(
        best_error=opt.gen_error, params=opt.params, solves=opt.solves, seconds_incl_compile=opt_s,
        converged=opt.converged, start=START, iterations=len(path["gen_error"]) - 1,
        first_iteration_within_1e_3_of_grid=hit[0] if hit else None, path=path,
    )
    within = opt.gen_error <= target
    fewer = grid["solves"] / max(opt.solves, 1)
    return dict(
        problem=dict(mixture=MIX, student=STUDENT, free=["lam_t", "temperature"]),
        grid=grid,
        gradient=gradient,
        error_gap_gradient_minus_grid=opt.gen_error - grid["best_error"],
        solves_ratio_grid_over_gradient=fewer,
        time_ratio_grid_over_gradient=grid["seconds"] / opt_s,
        target="gradient within 1e-3 of the grid's best with >= 10x fewer solves",
        target_met=bool(within and fewer >= 10),
        note="gradient solves = objective evaluations (value + gradient through both fixed points, "
             "line-search trials included); its wall time includes compiling value_and_grad. "
             "Grid time excludes the single compilation of the student solve (first_call_or_compile_s).",
    )


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
