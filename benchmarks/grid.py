"""(b) Grid throughput of ``kdjax.sweep`` over 10 ... 10000 points.

Teacher: the product grid of ``lam_t`` (log-spaced in [1e-2, 10]) and ``alpha`` (in [0.5, 5]) at
10, 100, 1000, 10000 points (quick: 10, 100), swept twice per size and batching:

- ``default``: ``batch_size=None``, i.e. ``kdjax._sweep.default_batch_size(devices)`` (1 on CPU:
  ``lax.map`` one point at a time; 256 on a GPU);
- ``vmap``: ``batch_size`` = the whole chunk (one ``vmap`` over every point).

``sweep`` caches its compiled function, so the second call of a size runs without compiling:
``seconds`` is that second call, ``compile_s`` the first call minus the second.  Reported: cost
per point and its ratio 10000 / 1000 points (target: flat or falling, ratio <= 1.1).

For comparison: a Python loop over the single jitted solve (100 points), and the default sweep
of 1000 points over (``alpha``, ``delta``) at a fixed ``lam_t`` (a grid over ``lam_t`` pays for
the finite-minimiser check at ``lam = 0``, see the report).  Student (same inputs, the latency
point with ``lam_t`` and ``T`` varied): the default sweep and the pure-vmap sweep of 100 points
(quick: default only, 10 points) and a Python loop over the single jitted solve.

Every point carries its ``converged`` flag; the converged fraction is reported (under vmap a single
slow point makes every point of its batch iterate as long, so it shows in the cost).

Continuation (``continuation``): would starting each point's fixed-point iteration from its grid
neighbour's solution pay?  ``kdjax.sweep``'s solve has no start argument (every point starts from
``kdjax._teacher.initial_state``), so this section calls the solver below it,
``kdjax._solve.solve_fixed_point``, along the ``lam_t`` axis (log-spaced in [1e-2, 10], at
``alpha`` 0.5, 2 and 5): cold (the fixed start, as the sweep does) and warm (the previous point's
fixed point), both as a Python loop over one jitted solve (best of three interleaved runs), reporting
iterations and time per point and the largest difference of the fixed points.
"""

from __future__ import annotations

import time

from _common import cold_warm, jax, jnp, mixture, np, student, student_jit, teacher, teacher_jit, timed

from kdjax import sweep
from kdjax._sweep import default_batch_size, grid_points  # internals the benchmark reports

SHAPES = {10: (2, 5), 100: (10, 10), 1000: (25, 40), 10000: (100, 100)}  # (lam_t, alpha | T)
LAM_RANGE = (1e-2, 10.0)
ALPHA_RANGE = (0.5, 5.0)
DELTA_RANGE = (0.5, 2.0)
T_RANGE = (0.5, 5.0)


def teacher_grid(n):
    n_lam, n_alpha = SHAPES[n]
    return dict(lam_t=np.geomspace(*LAM_RANGE, n_lam), alpha=np.linspace(*ALPHA_RANGE, n_alpha))


def student_grid(n):
    n_lam, n_t = SHAPES[n]
    return dict(lam_t=np.geomspace(*LAM_RANGE, n_lam), temperature=np.geomspace(*T_RANGE, n_t))


def _stats(res, n, seconds):
    return dict(
        points=n,
        seconds=seconds,
        ms_per_point=1e3 * seconds / n,
        converged_fraction=float(np.mean(np.asarray(res.converged))),
        max_iterations=int(np.max(np.asarray(res.iterations))),
        mean_iterations=float(np.mean(np.asarray(res.iterations))),
    )


def sweep_row(s, grid, batch_size=None, label=""):
    """``kdjax.sweep`` twice (compile + run, then the cached run) of the teacher (``s`` None) or
    the student at the benchmark point."""
    n = int(np.prod([len(v) for v in grid.values()]))
    res, t = cold_warm(lambda: sweep(mixture(), teacher(), s, grid, batch_size=batch_size))
    row = _stats(res, n, t["seconds"]) | t | dict(batch_size=batch_size or default_batch_size(jax.devices()))
    print(f"  grid {label} {n}: {row['ms_per_point']:.2f} ms/pt, compile {row['compile_s']:.1f} s, "
          f"converged {row['converged_fraction']:.3f}, iterations max {row['max_iterations']}", flush=True)
    return row


def loop_row(single_jit, args_list, label=""):
    """Python loop over an already-compiled single solve (first call excluded)."""
    jax.block_until_ready(single_jit(*args_list[0]))
    t0 = time.perf_counter()
    out = jax.block_until_ready([single_jit(*a) for a in args_list])
    res = jax.tree.map(lambda *xs: np.stack(xs), *out)
    row = _stats(res, len(args_list), time.perf_counter() - t0)
    print(f"  grid {label} {row['points']}: {row['ms_per_point']:.2f} ms/pt", flush=True)
    return row


def _points(grid):
    """The grid's points in sweep order, as dicts of Python floats."""
    flat, _ = grid_points(grid)
    return [dict(zip(flat, map(float, values))) for values in zip(*flat.values())]


def continuation(quick: bool) -> dict:
    """Cold vs warm (previous grid point's solution) starts of the teacher's fixed point along lam_t."""
    from kdjax import SolverConfig
    from kdjax._solve import solve_fixed_point
    from kdjax._teacher import initial_state, teacher_map

    config = SolverConfig()
    valid = lambda x: x[2] > 0
    fp = lambda mix, t, x0: solve_fixed_point(teacher_map, x0, (mix, t, config), config, valid=valid)
    cold = jax.jit(lambda mix, t: fp(mix, t, initial_state(mix, jnp.float64)))
    warm = jax.jit(fp)
    lams = np.geomspace(*LAM_RANGE, 20 if quick else 100)
    rows = {}
    for alpha in (0.5, 2.0, 5.0):
        mixes = [mixture(alpha=alpha) for _ in lams]
        ts = [teacher(lam) for lam in lams]
        jax.block_until_ready((cold(mixes[0], ts[0]), warm(mixes[0], ts[0], cold(mixes[0], ts[0]).x)))  # compile
        def cold_loop(mixes=mixes, ts=ts):
            return jax.block_until_ready([cold(m, t) for m, t in zip(mixes, ts)])

        def warm_loop(mixes=mixes, ts=ts):
            outs, x = [], initial_state(mixes[0], jnp.float64)
            for m, t in zip(mixes, ts):
                outs.append(warm(m, t, x))
                x = outs[-1].x  # the neighbour's fixed point starts the next point (sequential)
            return jax.block_until_ready(outs)

        cold_s, warm_s = [], []
        for _ in range(3):  # interleaved repeats, best of three (a shared machine)
            cold_out, dt = timed(cold_loop)
            cold_s.append(dt)
            warm_out, dt = timed(warm_loop)
            warm_s.append(dt)
        cold_s, warm_s = min(cold_s), min(warm_s)
        it = lambda outs: np.array([int(o.iterations) for o in outs])
        ic, iw = it(cold_out), it(warm_out)
        diff = max(float(np.max(np.abs(np.asarray(a.x) - np.asarray(b.x)))) for a, b in zip(cold_out, warm_out))
        rows[f"alpha={alpha:g}"] = dict(
            points=len(lams),
            cold_mean_iterations=float(ic.mean()), warm_mean_iterations=float(iw.mean()),
            cold_max_iterations=int(ic.max()), warm_max_iterations=int(iw.max()),
            iteration_ratio_warm_over_cold=float(iw.sum() / ic.sum()),
            cold_ms_per_point=1e3 * cold_s / len(lams), warm_ms_per_point=1e3 * warm_s / len(lams),
            time_ratio_warm_over_cold=warm_s / cold_s,
            all_converged=bool(all(bool(o.converged) for o in cold_out + warm_out)),
            max_abs_state_difference=diff,
        )
        r = rows[f"alpha={alpha:g}"]
        print(f"  continuation alpha {alpha:g}: iterations {r['cold_mean_iterations']:.1f} -> "
              f"{r['warm_mean_iterations']:.1f} (x{r['iteration_ratio_warm_over_cold']:.2f}), "
              f"{r['cold_ms_per_point']:.2f} -> {r['warm_ms_per_point']:.2f} ms/pt, "
              f"max |x diff| {diff:.1e}", flush=True)
    return dict(
        axis="lam_t", lam_range=LAM_RANGE, tol=config.tol, rows=rows,
        needs_solver_hook="kdjax.sweep cannot warm-start: its solve (kdjax._sweep.solve) takes no start "
                          "point; the numbers above call kdjax._solve.solve_fixed_point directly.",
    )


def continuation_markdown(c: dict) -> str:
    """The continuation section as a markdown table."""
    lines = ["### Continuation along lam_t (warm start from the neighbour's fixed point)", "",
             "| alpha | points | mean iterations cold / warm | max cold / warm | ms/pt cold / warm | "
             "time warm/cold | max \\|x diff\\| | converged |", "|---|---|---|---|---|---|---|---|"]
    for key, r in c["rows"].items():
        lines.append(f"| {key.split('=')[1]} | {r['points']} | {r['cold_mean_iterations']:.1f} / "
                     f"{r['warm_mean_iterations']:.1f} | {r['cold_max_iterations']} / {r['warm_max_iterations']} | "
                     f"{r['cold_ms_per_point']:.2f} / {r['warm_ms_per_point']:.2f} | "
                     f"{r['time_ratio_warm_over_cold']:.2f} | {r['max_abs_state_difference']:.1e} | "
                     f"{'yes' if r['all_converged'] else '**no**'} |")
    return "\n".join(lines + ["", c["needs_solver_hook"]])


def run(quick: bool) -> dict:
    sizes = [10, 100] if quick else [10, 100, 1000, 10000]
    modes = {"default": lambda n: None, "vmap": lambda n: n}
    rows = {mode: {str(n): sweep_row(None, teacher_grid(n), bs(n), f"teacher {mode}") for n in sizes}
            for mode, bs in modes.items()}

    scaling = {}
    if "10000" in rows["default"]:
        for mode, r in rows.items():
            ratio = r["10000"]["ms_per_point"] / r["1000"]["ms_per_point"]
            scaling[mode] = dict(ratio_10000_over_1000=ratio, flat_or_falling=bool(ratio <= 1.1))

    loop = loop_row(teacher_jit, [(mixture(alpha=p["alpha"]), teacher(p["lam_t"])) for p in _points(teacher_grid(100))],
                    "teacher loop")
    fixed_lam = None
    if not quick:
        grid = dict(alpha=np.linspace(*ALPHA_RANGE, 25), delta=np.linspace(*DELTA_RANGE, 40))
        fixed_lam = sweep_row(None, grid, None, "teacher default (alpha, delta)")

    n_s = 10 if quick else 100
    s = student("same")
    student_rows = {"default": sweep_row(s, student_grid(n_s), None, "student default")}
    if not quick:
        student_rows["vmap"] = sweep_row(s, student_grid(n_s), n_s, "student vmap")
    student_rows["loop"] = loop_row(
        student_jit, [(mixture(), teacher(p["lam_t"]), s.replace(temperature=p["temperature"]))
                      for p in _points(student_grid(n_s))], "student loop")

    return dict(
        teacher=rows,
        teacher_scaling=scaling or "needs sizes 1000 and 10000 (full mode)",
        target_met=bool(scaling["default"]["flat_or_falling"]) if scaling else None,
        teacher_python_loop=loop,
        teacher_fixed_lam_t=fixed_lam,
        student=student_rows,
        continuation=continuation(quick),
        default_batch_size=default_batch_size(jax.devices()),
        ranges=dict(lam_t=LAM_RANGE, alpha=ALPHA_RANGE, fixed_lam_t_delta=DELTA_RANGE, student_temperature=T_RANGE),
        note="seconds: the second (cached) sweep call; compile_s: first call minus second. "
             "default: batch_size=None (kdjax._sweep.default_batch_size); vmap: batch_size = all points. "
             "The target is judged on the default sweep.",
    )


if __name__ == "__main__":
    import json
    import sys

    if "--continuation" in sys.argv:  # this section alone
        c = continuation("--quick" in sys.argv)
        print(json.dumps(c, indent=1, default=str))
        print(continuation_markdown(c))
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
