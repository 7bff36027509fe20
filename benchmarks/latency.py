"""(a) Per-solve latency after JIT and compile time.

Cases (the issue-6 point: logistic teacher, lam_t = 0.1, alpha = 2, delta = 1):
teacher solve (``kdjax.solve_teacher(..., throw=False)`` under ``jax.jit``), student on the same inputs
and on fresh inputs (``kdjax.solve_student`` under ``jax.jit``), all with the parameter objects as
traced arguments.  The public eager entry points (``kdjax.solve_teacher`` / ``solve_student``:
regime checks, cached jit, convergence warning) are timed too (full mode).  Medians of >= 20 repeats, each
waited for with ``jax.block_until_ready``.  Targets: teacher <= 5 ms, student <= 30 ms.
"""

from __future__ import annotations

from _common import kdjax, mixture, solve_timing, student, student_jit, teacher, teacher_jit

TARGET_TEACHER_S = 5e-3
TARGET_STUDENT_S = 30e-3


def run(quick: bool) -> dict:
    n = 20 if quick else 50
    mix, t = mixture(), teacher()
    cases = {
        "teacher": (teacher_jit, (mix, t), TARGET_TEACHER_S),
        "student_same": (student_jit, (mix, t, student("same")), TARGET_STUDENT_S),
        "student_fresh": (student_jit, (mix, t, student("fresh")), TARGET_STUDENT_S),
    }
    rows = {}
    for name, (fn, args, target) in cases.items():
        row, res = solve_timing(fn, args, n)
        row.update(
            target_s=target,
            target_met=bool(row["median_s"] <= target),
            iterations=int(res.iterations),
            converged=bool(res.converged),
            gen_error=float(res.gen_error),
        )
        rows[name] = row
        print(f"  latency {name}: {row['median_s'] * 1e3:.2f} ms (target {target * 1e3:.0f} ms), "
              f"compile {row['compile_s']:.1f} s", flush=True)

    # Public API (eager regime checks + its own cached jit + convergence warning).  Full mode
    # only: its separate compilation costs another ~20 s.
    api = {} if quick else {
        "api_solve_teacher": (kdjax.solve_teacher, (mix, t)),
        "api_solve_student_same": (kdjax.solve_student, (mix, t, student("same"))),
    }
    for name, (fn, args) in api.items():
        row, res = solve_timing(fn, args, n)
        row.update(gen_error=float(res.gen_error))
        rows[name] = row
        print(f"  latency {name}: {row['median_s'] * 1e3:.2f} ms, first call {row['first_call_s']:.1f} s",
              flush=True)

    return dict(
        point=dict(alpha=mix.alpha, delta=mix.delta, rho=mix.rho, loss="logistic", lam_t=t.lam,
                   student=dict(student("same").__dict__), fresh_alpha_s=student("fresh").alpha),
        cases=rows,
        targets_met=dict(
            teacher=rows["teacher"]["target_met"],
            student_same=rows["student_same"]["target_met"],
            student_fresh=rows["student_fresh"]["target_met"],
        ),
        note="compile_s = first call in the process minus the median solve (trace + XLA compile).",
    )


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1, default=str))
