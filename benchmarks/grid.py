"""(b) Grid throughput: ``jax.jit(jax.vmap(solve))`` over 10 ... 10000 points.

Teacher: a product grid of ``lam_t`` (log-spaced in [1e-2, 10]) and ``alpha`` (in [0.5, 5]), at 10,
100, 1000, 10000 points (quick: 10, 100).  Each size is compiled ahead of time (``lower().compile()``,
timed) and run once (a grid of 10000 takes minutes on 2 CPU cores, so it is not repeated; smaller
sizes are run 3 times, median).  Reported: cost per point, its scaling 1000 -> 10000 (target: flat
or falling), and, for comparison, the same points through ``jax.lax.map`` (sequential inside one
jit) and through a Python loop over the single jitted solve.

Student (same inputs, the latency point with ``lam_t`` and ``T`` varied): ``jit(vmap)`` at 10 and 100
points (full mode; on CPU each size costs ~45 s to compile and ~0.1 s per point; 10, 100, 1000 on a
GPU) against a Python loop over the single jitted solve at 10 (quick) / 100 (full) points.

Every point carries its ``converged`` flag; the converged fraction is reported (under vmap a single
non-converging point makes every point of the batch run ``max_steps``, so it shows in the cost).
"""

from __future__ import annotations

import time

from _common import jax, jnp, kdjax, mixture, np, student, student_jit, teacher_jit, timed
from kdjax.teacher import solve_teacher_raw

SHAPES = {10: (2, 5), 100: (10, 10), 1000: (25, 40), 10000: (100, 100)}  # (lam_t, alpha | T)
LAM_RANGE = (1e-2, 10.0)
ALPHA_RANGE = (0.5, 5.0)
T_RANGE = (0.5, 5.0)


def teacher_points(n):
    n_lam, n_alpha = SHAPES[n]
    lam, alpha = np.meshgrid(np.logspace(np.log10(LAM_RANGE[0]), np.log10(LAM_RANGE[1]), n_lam),
                             np.linspace(*ALPHA_RANGE, n_alpha), indexing="ij")
    return jnp.asarray(lam.ravel()), jnp.asarray(alpha.ravel())


def _teacher_point(lam, alpha):
    return solve_teacher_raw(kdjax.Mixture(alpha=alpha, delta=1.0), kdjax.Teacher("logistic", lam))


def _student_point(lam_t, T):
    return kdjax.solve_student(mixture(), kdjax.Teacher("logistic", lam_t), student("same").replace(temperature=T))


def student_points(n):
    shape = SHAPES[n]
    lam, T = np.meshgrid(np.logspace(-2, 1, shape[0]), np.geomspace(*T_RANGE, shape[1]), indexing="ij")
    return jnp.asarray(lam.ravel()), jnp.asarray(T.ravel())


def _aot(fn, *args):
    """Compile ``fn`` for ``args`` ahead of time; (compiled, seconds to trace + lower + compile)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _stats(res, n, seconds):
    return dict(
        points=n,
        seconds=seconds,
        ms_per_point=1e3 * seconds / n,
        converged_fraction=float(np.mean(np.asarray(res.converged))),
        max_iterations=int(np.max(np.asarray(res.iterations))),
        mean_iterations=float(np.mean(np.asarray(res.iterations))),
    )


def _vmap_row(point_fn, args, n, repeats):
    compiled, compile_s = _aot(jax.vmap(point_fn), *args)
    times = []
    for _ in range(repeats):
        res, dt = timed(compiled, *args)
        times.append(dt)
    row = _stats(res, n, float(np.median(times)))
    row.update(compile_s=compile_s, repeats=repeats)
    return row, res


def _loop_row(single_jit, make_args, cols, n):
    """Python loop over an already-compiled single solve (first call excluded)."""
    values = list(zip(*(np.asarray(c).tolist() for c in cols)))  # Python floats, as elsewhere
    jax.block_until_ready(single_jit(*make_args(*values[0])))
    out, t0 = [], time.perf_counter()
    for vals in values:
        out.append(single_jit(*make_args(*vals)))
    jax.block_until_ready(out)
    seconds = time.perf_counter() - t0
    res = jax.tree.map(lambda *xs: np.stack(xs), *out)
    return _stats(res, n, seconds)


def run(quick: bool) -> dict:
    sizes = [10, 100] if quick else [10, 100, 1000, 10000]
    teacher_rows = {}
    for n in sizes:
        args = teacher_points(n)
        row, res = _vmap_row(_teacher_point, args, n, repeats=3 if n <= 1000 else 1)
        teacher_rows[n] = row
        print(f"  grid teacher vmap {n}: {row['ms_per_point']:.2f} ms/pt, compile {row['compile_s']:.1f} s, "
              f"converged {row['converged_fraction']:.3f}, iterations max {row['max_iterations']} "
              f"mean {row['mean_iterations']:.1f}", flush=True)

    # Same points, other batching strategies (for the per-point cost comparison).
    n_cmp = 100 if quick else 1000
    args = teacher_points(n_cmp)
    compiled, compile_s = _aot(lambda l, a: jax.lax.map(lambda p: _teacher_point(*p), (l, a)), *args)
    res, dt = timed(compiled, *args)
    lax_map = _stats(res, n_cmp, dt) | dict(compile_s=compile_s)
    print(f"  grid teacher lax.map {n_cmp}: {lax_map['ms_per_point']:.2f} ms/pt", flush=True)
    n_loop = 100
    loop = _loop_row(teacher_jit, lambda l, a: (kdjax.Mixture(alpha=a, delta=1.0), kdjax.Teacher("logistic", l)),
                     teacher_points(n_loop), n_loop)
    print(f"  grid teacher loop {n_loop}: {loop['ms_per_point']:.2f} ms/pt", flush=True)

    big = [n for n in (1000, 10000) if n in teacher_rows]
    scaling = None
    if len(big) == 2:
        r = teacher_rows[10000]["ms_per_point"] / teacher_rows[1000]["ms_per_point"]
        scaling = dict(ratio_10000_over_1000=r, target="flat or falling (ratio <= 1.1)", target_met=bool(r <= 1.1))

    # Student
    student_rows = {}
    on_gpu = jax.default_backend() == "gpu"
    vmap_sizes = ([10, 100] if quick else [10, 100, 1000]) if on_gpu else ([] if quick else [10, 100])
    for n in vmap_sizes:
        row, _ = _vmap_row(_student_point, student_points(n), n, repeats=1)
        student_rows[f"vmap_{n}"] = row
        print(f"  grid student vmap {n}: {row['ms_per_point']:.1f} ms/pt, compile {row['compile_s']:.1f} s", flush=True)
    n_s = 10 if quick else 100
    row = _loop_row(student_jit, lambda l, T: (mixture(), kdjax.Teacher("logistic", l),
                                                student("same").replace(temperature=T)),
                    student_points(n_s), n_s)
    student_rows[f"loop_{n_s}"] = row
    print(f"  grid student loop {n_s}: {row['ms_per_point']:.1f} ms/pt", flush=True)

    return dict(
        teacher_vmap={str(k): v for k, v in teacher_rows.items()},
        teacher_lax_map=lax_map,
        teacher_python_loop=loop,
        teacher_scaling=scaling if scaling else "needs sizes 1000 and 10000 (full mode)",
        student=student_rows,
        student_note=(
            f"student jit(vmap) sizes {vmap_sizes} (on CPU 10 and 100 in full mode, none in quick mode: "
            "each size is its own compilation, see the compile column); "
            "loop = Python loop over the single jitted solve"
        ),
        ranges=dict(teacher_lam_t=LAM_RANGE, teacher_alpha=ALPHA_RANGE, student_lam_t=(1e-2, 10.0),
                    student_temperature=T_RANGE),
    )


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
