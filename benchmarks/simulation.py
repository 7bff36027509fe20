"""(d) One theory point vs the finite-N simulation of the same objectives.

Point: the latency point (logistic teacher lam_t = 0.1, alpha = 2, delta = 1; student gamma = 0.5,
T = 2, a = 0.3, lam_s = 0.01, same inputs).  Theory: median of 20 jitted solves.  Simulation:
``kdjax.simulate.simulate_teacher`` and ``simulate_student`` with 10 seeds at N = 1000 and 2000
(quick: N = 500, 4 seeds), one call each, wall time as a user sees it (the call includes its XLA
compilation, ~10-30 s; the simulation's jit is keyed on N and the seed count, so it cannot be
warmed up without paying a second full run).  ``simulate_student`` trains its own teacher (the
same experiment as ``simulate_teacher``'s) before the student, and its time includes it.

Agreement: theory vs simulation mean +- sem (m, q, b, gen_error; r for the student), as
z = (theory - mean) / sem.  Target: simulation / theory time >= 1000.
"""

from __future__ import annotations

import numpy as np
from _common import mixture, solve_timing, student, student_jit, teacher, teacher_jit, timed

from kdjax.simulate import simulate_student, simulate_teacher

TARGET_RATIO = 1000.0


def _agree(theory, sim, keys):
    mean, sem = sim.mean(failed="drop"), sim.sem(failed="drop")
    out = {}
    for k in keys:
        th, mu, se = float(getattr(theory, k)), float(getattr(mean, k)), float(getattr(sem, k))
        out[k] = dict(theory=th, sim_mean=mu, sim_sem=se, z=(th - mu) / se if se > 0 else float("nan"))
    out["converged_seeds"] = float(np.mean(np.asarray(sim.converged)))
    return out


def run(quick: bool) -> dict:
    mix, t, s = mixture(), teacher(), student("same")
    configs = [(500, 4)] if quick else [(1000, 10), (2000, 10)]

    theory = {}
    for name, fn, args in (("teacher", teacher_jit, (mix, t)), ("student", student_jit, (mix, t, s))):
        theory[name], theory[name + "_result"] = solve_timing(fn, args, 20)

    rows = []
    for N, seeds in configs:
        row = dict(N=N, seeds=seeds)
        sim_t, dt = timed(lambda N=N, seeds=seeds: simulate_teacher(mix, t, n_features=N, seeds=seeds))
        row["teacher"] = dict(sim_s=dt, theory_s=theory["teacher"]["median_s"],
                              ratio=dt / theory["teacher"]["median_s"],
                              agreement=_agree(theory["teacher_result"], sim_t, ("m", "q", "b", "gen_error")))
        print(f"  simulation teacher N={N} x{seeds}: {dt:.1f} s, ratio {row['teacher']['ratio']:.0f}x", flush=True)
        sim_s, dt = timed(lambda N=N, seeds=seeds: simulate_student(mix, t, s, n_features=N, seeds=seeds))
        row["student"] = dict(sim_s=dt, theory_s=theory["student"]["median_s"],
                              ratio=dt / theory["student"]["median_s"],
                              agreement=_agree(theory["student_result"], sim_s, ("m", "q", "r", "b", "gen_error")))
        print(f"  simulation student N={N} x{seeds}: {dt:.1f} s, ratio {row['student']['ratio']:.0f}x", flush=True)
        rows.append(row)

    ratios = [r[k]["ratio"] for r in rows for k in ("teacher", "student") if k in r]
    max_abs_z = max(abs(a["z"]) for r in rows for k in ("teacher", "student")
                    if k in r for key, a in r[k]["agreement"].items() if isinstance(a, dict))
    for k in ("teacher_result", "student_result"):
        theory.pop(k)
    return dict(
        theory=theory,
        simulations=rows,
        min_ratio=float(min(ratios)),
        max_abs_z=float(max_abs_z),
        target_ratio=TARGET_RATIO,
        target_met=bool(min(ratios) >= TARGET_RATIO),
        note="sim_s: one call incl. its XLA compile; theory_s: median warm jitted solve. "
             "z = (theory - sim mean)/sem; finite-N corrections O(1/sqrt(N)) are not subtracted.",
    )


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
