"""(f) Cold start (issues 12 and 16): what a fresh process pays before its first answer.

    python benchmarks/cold.py [--quick] [--repeats N] [--baseline REF | --no-baseline] [--out benchmarks/results_cold]

Everything here runs in fresh interpreters (``subprocess``), float64, one after the other:

* ``python -c "import kdjax"``;
* the README's Python example typed line by line (import, first ``solve_teacher``, first
  ``solve_student``, ``jax.grad`` at two points, ``jax.vmap`` over 20 points), each step timed;
* ``kdjax solve`` teacher (``--alpha 2 --lam-t 0.1``) and student (``--gamma 0.5 --temperature 2``)
  and a 100-point student ``kdjax sweep`` (``--grid temperature=lin:0.5:5:100``), each with an
  empty persistent compilation cache (a new ``KDJAX_CACHE_DIR`` per run) and with a warm one (the
  folder the first empty run filled); medians;
* first calls of the public API, each in its own fresh process (``--repeats`` processes per call,
  medians): ``solve_teacher``,
  ``solve_student`` (same and fresh data), ``jax.grad`` of the student error w.r.t. the
  temperature, a 100-point ``kdjax.sweep`` of the student and ``kdjax.optimize_kd``: wall time of
  the first call, split by JAX's own compile events (``jax.monitoring``: tracing to a jaxpr,
  lowering to StableHLO, XLA backend compilation; the rest is execution and Python), the steady
  time (the median of ``n`` calls after ``n`` untimed warm-up calls: ``n`` = 100 for
  ``solve_teacher``, 20 for the student solves, 10 for ``jax.grad``, 1 for ``sweep`` and
  ``optimize_kd``; the warm-up stops after 5 s and the timed calls after 30 s, at least 3 of
  them), and the size of the program text (``jax.jit(f).lower(...).as_text()``;
  for ``sweep`` / ``optimize_kd``, which are not one jit-able function, the StableHLO that
  ``jax_dump_ir_to`` wrote during the first call).

``--baseline REF`` (default a80e843, the last commit before the generation core of issue 16) installs the project at
git ``REF`` into a temporary venv (``--system-site-packages``, ``pip install --no-deps``) and runs
the same measurements with its interpreter, side by side.  The baseline has no cache: its
"warm" runs are plain repeats.  The in-process workers use only the public API, so they run on
both.  Writes ``<out>.json`` and ``<out>.md``; ``run(quick)`` is the ``run_all.py`` entry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BASELINE = "a80e843"  # the last commit before the generation core (issue 16)

TEACHER_CMD = ["solve", "--alpha", "2", "--lam-t", "0.1", "--json"]
STUDENT_CMD = ["solve", "--gamma", "0.5", "--temperature", "2", "--json"]
SWEEP_CMD = ["sweep", "--gamma", "0.5", "--temperature", "2", "--grid", "temperature=lin:0.5:5:100",
             "--format", "json"]
ITEMS = ("solve_teacher", "solve_student_same", "solve_student_fresh", "grad_student_temperature",
         "sweep_student_100", "optimize_kd")

# Issue-16 targets (seconds).
TARGETS = dict(
    readme_total_s=20.0,
    readme_second_grad_s=0.1,
    readme_vmap_s=5.0,
    first_solve_teacher_s=2.0,
    first_solve_student_s=5.0,
    first_grad_s=8.0,
    cli_student_warm_over_import=2.0,
    cli_sweep_empty_s=15.0,
    steady_student_s=10e-3,
    steady_teacher_s=0.5e-3,
)

# The README's Python example, typed line by line in a fresh interpreter (no persistent cache):
# the time of each step; prints one JSON line.
README = r'''
import json, time
t0 = time.perf_counter()
steps = {}
def mark(name):
    global t0
    t = time.perf_counter(); steps[name] = t - t0; t0 = t
import jax
jax.config.update("jax_enable_x64", True)
import kdjax
mark("import kdjax")
mix = kdjax.Mixture(alpha=3.0, delta=1.0, rho=0.5)
teacher = kdjax.Teacher(loss="logistic", lam=0.1)
student = kdjax.Student(gamma=0.5, temperature=2.0, hard_weight=0.3, lam=0.01, data="same")
jax.block_until_ready(kdjax.solve_teacher(mix, teacher).gen_error)
mark("first solve_teacher")
jax.block_until_ready(kdjax.solve_student(mix, teacher, student).gen_error)
mark("first solve_student")
err = lambda lam_t, T: kdjax.solve_student(mix, kdjax.Teacher("logistic", lam_t),
                                           student.replace(temperature=T)).gen_error
jax.block_until_ready(jax.grad(err, argnums=(0, 1))(0.1, 2.0))
mark("jax.grad(err, argnums=(0, 1))(0.1, 2.0)")
jax.block_until_ready(jax.grad(err, argnums=(0, 1))(0.2, 2.0))
mark("the same jax.grad at (0.2, 2.0)")
jax.block_until_ready(jax.vmap(err, in_axes=(0, None))(jax.numpy.logspace(-3, 1, 20), 2.0))
mark("jax.vmap(err, ...) over 20 points")
steps["total"] = sum(steps.values())
print(json.dumps(steps))
'''

# One in-process measurement, run as ``python -c WORKER ITEM`` in a fresh interpreter: public
# API only (it runs on the baseline too); prints one JSON line.
WORKER = r'''
import collections, json, os, statistics, sys, tempfile, time
t_start = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import kdjax
import_s = time.perf_counter() - t_start
item = sys.argv[1]
events = collections.defaultdict(float)
jax.monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: events.__setitem__(name, events[name] + secs))
mix, t = kdjax.Mixture(2.0, 1.0, 0.5), kdjax.Teacher("logistic", 0.1)
same = kdjax.Student(gamma=0.5, temperature=2.0)
fresh = kdjax.Student(gamma=0.5, temperature=2.0, data="fresh", alpha=2.0)
grad_T = jax.grad(lambda T: kdjax.solve_student(mix, t, kdjax.Student(gamma=0.5, temperature=T)).gen_error)
grid = {"temperature": np.linspace(0.5, 5.0, 100)}
calls = {
    "solve_teacher": (lambda: kdjax.solve_teacher(mix, t), lambda: jax.jit(kdjax.solve_teacher).lower(mix, t), 100),
    "solve_student_same": (lambda: kdjax.solve_student(mix, t, same),
                           lambda: jax.jit(kdjax.solve_student).lower(mix, t, same), 20),
    "solve_student_fresh": (lambda: kdjax.solve_student(mix, t, fresh),
                            lambda: jax.jit(kdjax.solve_student).lower(mix, t, fresh), 20),
    "grad_student_temperature": (lambda: grad_T(2.0), lambda: jax.jit(grad_T).lower(2.0), 10),
    "sweep_student_100": (lambda: kdjax.sweep(mix, t, same, grid), None, 1),
    "optimize_kd": (lambda: kdjax.optimize_kd(mix, kdjax.Teacher("logistic", 0.01),
                                              kdjax.Student(gamma=0.5, temperature=1.0, hard_weight=0.5),
                                              ("lam_t", "temperature"), steps=10, tol=1e-7), None, 1),
}
fn, lower, n = calls[item]
dump = None
if lower is None:  # not one jit-able function: keep the StableHLO JAX lowers during the first call
    dump = tempfile.mkdtemp()
    jax.config.update("jax_dump_ir_to", dump)
    jax.config.update("jax_include_debug_info_in_dumps", False)
t0 = time.perf_counter()
jax.block_until_ready(fn())
first = time.perf_counter() - t0
split = {k.rsplit("/", 1)[-1]: v for k, v in events.items() if k.startswith("/jax/core/compile/")}
if dump is not None:
    jax.config.update("jax_dump_ir_to", "")
# untimed warm-up (the steady time is that of a process past its first calls), then the timed
# calls; each stops early when its time is up (a call that retraces takes seconds every time)
t_end = time.perf_counter() + 5.0
for k in range(n):
    jax.block_until_ready(fn())
    if time.perf_counter() > t_end:
        break
times, t_end = [], time.perf_counter() + 30.0
for k in range(n):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
    if k >= 2 and time.perf_counter() > t_end:
        break
out = dict(item=item, import_s=import_s, first_call_s=first, steady_median_s=statistics.median(times),
           steady_repeats=len(times), trace_s=split.get("jaxpr_trace_duration", 0.0),
           lower_s=split.get("jaxpr_to_mlir_module_duration", 0.0),
           compile_s=split.get("backend_compile_duration", 0.0), kdjax_file=kdjax.__file__)
out["other_s"] = first - out["trace_s"] - out["lower_s"] - out["compile_s"]
if lower is not None:
    out["hlo_chars"] = len(lower().as_text())
    out["hlo_source"] = "jax.jit(f).lower(args).as_text()"
else:
    files = [os.path.join(dump, f) for f in os.listdir(dump) if f.endswith(".mlir")]
    out["hlo_chars"] = sum(len(open(f).read()) for f in files)
    out["hlo_source"] = f"jax_dump_ir_to, {len(files)} modules"
print(json.dumps(out))
'''


def _env(python_path, cache_dir=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KDJAX_CACHE_DIR")}
    if python_path:
        env["PYTHONPATH"] = python_path
    env["KDJAX_CACHE_DIR"] = "" if cache_dir is None else cache_dir
    return env


def _timed(argv, env) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {out.returncode}: {out.stderr[-1500:]}")
    return dt, out


def _files(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def measure(python: str, python_path, scratch: str, repeats: int, label: str) -> dict:
    """Every fresh-process measurement with interpreter ``python`` (``python_path``: its PYTHONPATH)."""
    res = dict(python=python)
    env = _env(python_path)
    _, who = _timed([python, "-c", "import kdjax, jax; print(kdjax.__file__, jax.__version__)"], env)
    res["kdjax_file"], res["jax"] = who.stdout.split()
    imp = [_timed([python, "-c", "import kdjax"], env)[0] for _ in range(repeats + 1)]
    res["import"] = dict(median_s=statistics.median(imp), runs_s=imp)
    print(f"  [{label}] import kdjax {res['import']['median_s']:.2f} s", flush=True)
    for name, cmd in (("cli_teacher", TEACHER_CMD), ("cli_student", STUDENT_CMD), ("cli_sweep", SWEEP_CMD)):
        empty, warm, outputs = [], [], []
        warm_dir = None
        for i in range(repeats):
            folder = os.path.join(scratch, f"{label}-{name}-{i}")
            argv = [python, "-m", "kdjax.cli", *cmd]
            if name == "cli_sweep":
                argv += ["--out", os.path.join(scratch, f"{label}-{name}-{i}.json")]
            dt, out = _timed(argv, _env(python_path, folder))
            empty.append(dt)
            warm_dir = warm_dir or folder
        listing = _files(warm_dir) if os.path.isdir(warm_dir) else []
        for _ in range(repeats):
            argv = [python, "-m", "kdjax.cli", *cmd]
            if name == "cli_sweep":
                argv += ["--out", os.path.join(scratch, f"{label}-{name}-warm.json")]
            dt, out = _timed(argv, _env(python_path, warm_dir))
            warm.append(dt)
            outputs.append(out.stdout)
        after = _files(warm_dir) if os.path.isdir(warm_dir) else []
        res[name] = dict(empty_median_s=statistics.median(empty), empty_runs_s=empty,
                         warm_median_s=statistics.median(warm), warm_runs_s=warm,
                         cache_entries=len(listing), new_entries_in_warm_runs=len(set(after) - set(listing)))
        print(f"  [{label}] {name}: empty {res[name]['empty_median_s']:.1f} s, warm {res[name]['warm_median_s']:.1f} s "
              f"({len(listing)} cache entries)", flush=True)
    readme = [json.loads(_timed([python, "-c", README], env)[1].stdout.strip().splitlines()[-1])
              for _ in range(max(1, repeats // 2))]
    res["readme"] = {k: statistics.median(r[k] for r in readme) for k in readme[0]}
    print(f"  [{label}] README example: " + ", ".join(f"{k} {v:.2f} s" for k, v in res["readme"].items()), flush=True)
    res["in_process"] = {}
    for item in ITEMS:
        rows = [json.loads(_timed([python, "-c", WORKER, item], env)[1].stdout.strip().splitlines()[-1])
                for _ in range(repeats)]
        row = {k: statistics.median(r[k] for r in rows) if isinstance(v, float) else v for k, v in rows[0].items()}
        row["processes"] = len(rows)
        row["steady_median_runs_s"] = [r["steady_median_s"] for r in rows]
        res["in_process"][item] = row
        print(f"  [{label}] first {item}: {row['first_call_s']:.1f} s (trace {row['trace_s']:.1f}, lower "
              f"{row['lower_s']:.1f}, compile {row['compile_s']:.1f}), steady {row['steady_median_s'] * 1e3:.2f} ms, "
              f"HLO {row['hlo_chars']} chars", flush=True)
    return res


def build_baseline(ref: str, scratch: str) -> str:
    """A venv (system site packages) with the project at git ``ref`` installed; its python."""
    src = os.path.join(scratch, "baseline-src")
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    venv = os.path.join(scratch, "baseline-venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    python = os.path.join(venv, "bin", "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", src], check=True,
                   env=_env(None))
    return python


def targets(res: dict) -> list[dict]:
    """One row per issue-16 target, from one column's measurements."""
    ip, rd = res["in_process"], res["readme"]
    rows = []

    def row(quantity, value, limit, text):
        rows.append(dict(quantity=quantity, value=value, target=text, met=bool(value <= limit)))

    row("README Python example, end to end (fresh process)", rd["total"], TARGETS["readme_total_s"], "<= 20 s")
    row("README: the second `jax.grad` at a new point", rd["the same jax.grad at (0.2, 2.0)"],
        TARGETS["readme_second_grad_s"], "<= 0.1 s")
    row("README: `jax.vmap` over 20 points after the gradient", rd["jax.vmap(err, ...) over 20 points"],
        TARGETS["readme_vmap_s"], "<= 5 s")
    row("first `solve_teacher` in a fresh process", ip["solve_teacher"]["first_call_s"],
        TARGETS["first_solve_teacher_s"], "<= 2 s")
    row("first `solve_student` in a fresh process", ip["solve_student_same"]["first_call_s"],
        TARGETS["first_solve_student_s"], "<= 5 s")
    row("first `jax.grad` of the student error (temperature)", ip["grad_student_temperature"]["first_call_s"],
        TARGETS["first_grad_s"], "<= 8 s")
    ratio = res["cli_student"]["warm_median_s"] / res["import"]["median_s"]
    row("`kdjax solve` student, warm cache / `import kdjax`", ratio, TARGETS["cli_student_warm_over_import"], "<= 2x")
    row("`kdjax sweep` 100 student points, empty cache", res["cli_sweep"]["empty_median_s"],
        TARGETS["cli_sweep_empty_s"], "<= 15 s")
    row("student solve after compilation (median)", ip["solve_student_same"]["steady_median_s"],
        TARGETS["steady_student_s"], "<= 10 ms")
    row("teacher solve after compilation (median)", ip["solve_teacher"]["steady_median_s"],
        TARGETS["steady_teacher_s"], "<= 0.5 ms")
    return rows


def run(quick: bool, repeats: int | None = None, baseline: str | None = DEFAULT_BASELINE) -> dict:
    repeats = repeats or (2 if quick else 5)
    scratch = tempfile.mkdtemp(prefix="kdjax-cold-")
    try:
        columns = {}
        if baseline:
            t0 = time.perf_counter()
            python = build_baseline(baseline, scratch)
            print(f"  baseline {baseline}: venv built in {time.perf_counter() - t0:.0f} s", flush=True)
            columns[f"baseline {baseline}"] = measure(python, None, scratch, repeats, "baseline")
        columns["this tree"] = measure(sys.executable, os.path.join(ROOT, "src"), scratch, repeats, "tree")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return dict(
        repeats=repeats, baseline=baseline, head=head.strip(), loadavg=os.getloadavg(),
        commands=dict(teacher=TEACHER_CMD, student=STUDENT_CMD, sweep=SWEEP_CMD),
        columns=columns, targets={k: targets(v) for k, v in columns.items()},
        note="fresh processes, one after the other; medians of `repeats` runs (import: repeats + 1). "
             "empty: a new KDJAX_CACHE_DIR per run; warm: the folder the first empty run filled. "
             "The baseline has no persistent cache (its warm runs are repeats).",
    )


def _fmt(x, quantity=""):
    if not isinstance(x, (int, float)):
        return str(x)
    if "/" in quantity and "import" in quantity:
        return f"{x:.2f}x"
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.1f} s"


def markdown(res: dict) -> str:
    cols = list(res["columns"])
    L = [f"# Cold start (issue 16), HEAD {res['head']}", "",
         f"Repeats {res['repeats']}; load average (1/5/15 min) at the end "
         f"{', '.join(f'{x:.1f}' for x in res['loadavg'])}. {res['note']}", ""]
    L += ["## Targets", "", "| quantity | " + " | ".join(cols) + " | target | met (this tree) |",
          "|---|" + "---|" * len(cols) + "---|---|"]
    per_col = {c: res["targets"][c] for c in cols}
    for i, row in enumerate(per_col["this tree"]):
        vals = " | ".join(_fmt(per_col[c][i]["value"], row["quantity"]) for c in cols)
        L.append(f"| {row['quantity']} | {vals} | {row['target']} | {'yes' if row['met'] else '**no**'} |")
    L += ["", "## Fresh processes (medians)", "", "| measurement | " + " | ".join(cols) + " |",
          "|---|" + "---|" * len(cols)]
    L.append("| `python -c \"import kdjax\"` | "
             + " | ".join(_fmt(res["columns"][c]["import"]["median_s"]) for c in cols) + " |")
    for name, label in (("cli_teacher", "`kdjax solve` teacher"), ("cli_student", "`kdjax solve` student"),
                        ("cli_sweep", "`kdjax sweep` 100 student points")):
        for kind in ("empty", "warm"):
            L.append(f"| {label}, {kind} cache | " + " | ".join(
                _fmt(res["columns"][c][name][f"{kind}_median_s"]) for c in cols) + " |")
        L.append(f"| {label}: cache entries written / new in warm runs | " + " | ".join(
            f"{res['columns'][c][name]['cache_entries']} / {res['columns'][c][name]['new_entries_in_warm_runs']}"
            for c in cols) + " |")
    L += ["", "## The README example, step by step (fresh process, no persistent cache; median)", "",
          "| step | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for step in res["columns"][cols[-1]]["readme"]:
        L.append(f"| {step} | " + " | ".join(_fmt(res["columns"][c]["readme"][step]) for c in cols) + " |")
    L += ["", "## First calls in a fresh process (public API, no persistent cache)", "",
          "| call | column | first call | trace | lower | XLA compile | rest | steady | program text |",
          "|---|---|---|---|---|---|---|---|---|"]
    for item in ITEMS:
        for c in cols:
            r = res["columns"][c]["in_process"][item]
            L.append(f"| {item} | {c} | {_fmt(r['first_call_s'])} | {_fmt(r['trace_s'])} | {_fmt(r['lower_s'])} "
                     f"| {_fmt(r['compile_s'])} | {_fmt(r['other_s'])} | {_fmt(r['steady_median_s'])}"
                     f"{_runs(r)} "
                     f"| {r['hlo_chars']} chars ({r['hlo_source']}) |")
    L += ["", "Each call in its own fresh processes (medians over them; steady: the median of n calls after n "
          "untimed warm-up calls, the warm-up cut at 5 s and the timed calls at 30 s, and in brackets that of "
          "each process).", "",
          "trace / lower / XLA compile: JAX's `/jax/core/compile/*` duration events during the first call "
          "(jaxpr tracing, StableHLO lowering, backend compilation); rest: first call minus those (execution, "
          "eager checks, Python; slightly negative when nested jits make the tracing events overlap). "
          "Interpreters: " + "; ".join(f"{c}: kdjax from {res['columns'][c]['kdjax_file']}" for c in cols), ""]
    return "\n".join(L) + "\n"


def _runs(row) -> str:
    """`` (a, b, c)``: the steady time of each process, where there were several."""
    runs = row.get("steady_median_runs_s", [])
    return " (" + ", ".join(_fmt(v) for v in runs) + ")" if len(runs) > 1 else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats (default 5)")
    ap.add_argument("--repeats", type=int, help="runs per fresh-process measurement")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE,
                    help=f"git ref to compare with (default {DEFAULT_BASELINE})")
    ap.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    ap.add_argument("--out", default=os.path.join(HERE, "results_cold"), help="output prefix (.json, .md)")
    args = ap.parse_args(argv)
    res = run(args.quick, args.repeats, None if args.no_baseline else args.baseline)
    with open(args.out + ".json", "w") as fh:
        json.dump(res, fh, indent=1)
    with open(args.out + ".md", "w") as fh:
        fh.write(markdown(res))
    print(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
