"""Run the kdjax benchmark suite (issue 6, part 1) and write results.json / results.md.

    python benchmarks/run_all.py [--quick] [--only latency,grid,...] [--out benchmarks/results]

Benchmarks (each a module here with ``run(quick) -> dict``), in this order, in one process:
latency (a), grid (b), reference (c), simulation (d), recipe (e), chain_mc (g: a depth-3 same-input
chain, kdjax vs the Monte Carlo saddle-point approach; ``python benchmarks/chain_mc.py`` alone writes
its own results_chain_mc.{json,md}), cold (f: fresh processes, with the baseline commit
``cold.DEFAULT_BASELINE`` side by side; ``python benchmarks/cold.py`` alone writes its own
results_cold.{json,md}).  All numbers come from this one
run; each module's wall time and the machine's load average around it are recorded (the machine
may be shared: a load above the core count inflates every timing).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import machine_info  # noqa: E402  (turns on float64)

ORDER = ("latency", "grid", "reference", "simulation", "recipe", "chain_mc", "cold")


def _jsonable(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if hasattr(x, "shape") and hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def run_suite(quick: bool, only=None, modules=ORDER) -> dict:
    results = dict(
        mode="quick" if quick else "full",
        started=datetime.datetime.now().isoformat(timespec="seconds"),
        machine=machine_info(),
        benchmarks={},
    )
    t_all = time.perf_counter()
    for name in modules:
        if only and name not in only:
            continue
        print(f"[{name}]", flush=True)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        try:
            out = importlib.import_module(name).run(quick)
        except Exception as exc:  # record and carry on: one failure must not lose the others
            out = dict(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            print(out["traceback"], flush=True)
        out["_wall_s"] = time.perf_counter() - t0
        out["_loadavg_before_after"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
        results["benchmarks"][name] = out
        print(f"[{name}] {out['_wall_s']:.1f} s", flush=True)
    results["total_wall_s"] = time.perf_counter() - t_all
    return results


# ------------------------------------------------------------------ markdown
def _ms(s):
    return f"{1e3 * s:.2f} ms" if s < 1 else f"{s:.2f} s"


def _num(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def _yes(b):
    return "yes" if b else "**no**"


def markdown(res: dict) -> str:
    m = res["machine"]
    b = res["benchmarks"]
    L = [f"# kdjax benchmarks ({res['mode']} mode)", ""]
    L += [f"Run {res['started']}, total {res['total_wall_s']:.0f} s. "
          f"CPU: {m['cpu_model']} ({m['cpu_cores_available']} cores available); device: {m['device']}; "
          f"jax {m['jax']} / jaxlib {m['jaxlib']}, numpy {m['numpy']}, scipy {m['scipy']}, "
          f"python {m['python']}, float64: {m['x64']}; kdjax {m['kdjax']} "
          f"(source sha256 {m.get('kdjax_source_sha256', '?')}).", ""]
    loads = {k: v.get("_loadavg_before_after") for k, v in b.items()}
    L += ["Load average (1 min) before/after each benchmark: "
          + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in loads.items() if v)
          + f" (cores: {m['cpu_cores_available']}; a load above that means the machine was shared and"
            " absolute times are inflated; ratios measured in the same run are more robust).", ""]

    # Summary of targets
    L += ["## Targets", "", "| benchmark | quantity | measured | target | met |", "|---|---|---|---|---|"]
    if "latency" in b and "cases" in b["latency"]:
        for name, row in b["latency"]["cases"].items():
            if "target_s" in row:
                L.append(f"| latency | {name} solve, median of {row['repeats']} | {_ms(row['median_s'])} "
                         f"| <= {_ms(row['target_s'])} | {_yes(row['target_met'])} |")
    if "grid" in b and "teacher" in b["grid"]:
        sc = b["grid"]["teacher_scaling"]
        if isinstance(sc, dict):
            for mode, v in sc.items():
                L.append(f"| grid | teacher sweep cost/point, 10000 / 1000 points ({mode}) "
                         f"| x{v['ratio_10000_over_1000']:.2f} | flat or falling (<= 1.1) "
                         f"| {_yes(v['flat_or_falling'])} |")
        else:
            L.append(f"| grid | teacher scaling 1000 -> 10000 | not measured ({sc}) | flat or falling | n/a |")
    if "reference" in b and "points" in b["reference"]:
        r = b["reference"]
        L.append(f"| reference | max abs diff (m, q, b, V, gen_error), {len(r['points'])} points "
                 f"| {r['max_abs_diff']:.1e} | <= 1e-6 | {_yes(r['agree_to_1e_6'])} |")
        L.append(f"| reference | time ratio SciPy reference / kdjax (min over points) | {r['min_ratio']:.0f}x "
                 f"| >= 50x | {_yes(r['min_ratio'] >= 50)} |")
    if "simulation" in b and "simulations" in b["simulation"]:
        s = b["simulation"]
        for row in s["simulations"]:
            for who in ("teacher", "student"):
                if who in row:
                    w = row[who]
                    L.append(f"| simulation | {who}: simulation (N={row['N']}, {row['seeds']} seeds) / theory time "
                             f"| {w['sim_s']:.1f} s / {_ms(w['theory_s'])} = {w['ratio']:.0f}x | >= 1000x "
                             f"| {_yes(w['ratio'] >= 1000)} |")
        L.append(f"| simulation | max abs z, theory vs sim mean (m, q, r, b, gen_error) | {s['max_abs_z']:.1f} "
                 f"| (agreement within error bars + finite size) | see (d) |")
    if "recipe" in b and "grid" in b["recipe"]:
        r = b["recipe"]
        L.append(f"| recipe | gradient best error - grid best | {r['error_gap_gradient_minus_grid']:+.2e} | <= +1e-3 "
                 f"| {_yes(r['error_gap_gradient_minus_grid'] <= 1e-3)} |")
        L.append(f"| recipe | solves grid / gradient | {r['grid']['solves']} / {r['gradient']['solves']} = "
                 f"{r['solves_ratio_grid_over_gradient']:.1f}x | >= 10x "
                 f"| {_yes(r['solves_ratio_grid_over_gradient'] >= 10)} |")
        if "chain" in r:
            c = r["chain"]
            gap = c["error_gap_gradient_minus_grid"]
            L.append(f"| recipe | chain: gradient best error - grid best (same solves) | {gap:+.2e} | <= 0 "
                     f"| {_yes(gap <= 0)} |")
    if "cold" in b and "targets" in b["cold"]:
        import cold

        for row in b["cold"]["targets"]["this tree"]:
            L.append(f"| cold | {row['quantity']} | {cold._fmt(row['value'], row['quantity'])} | {row['target']} "
                     f"| {_yes(row['met'])} |")
    for k, v in b.items():
        if "error" in v:
            L.append(f"| {k} | FAILED | {v['error']} | | |")
    L.append("")

    if "latency" in b and "cases" in b["latency"]:
        L += ["## (a) Latency (after JIT; compile separately)", "",
              "| case | median | min | max | repeats | compile | iterations | converged |",
              "|---|---|---|---|---|---|---|---|"]
        for name, row in b["latency"]["cases"].items():
            comp = f"{row['compile_s']:.1f} s" if "compile_s" in row else f"first call {row['first_call_s']:.1f} s"
            L.append(f"| {name} | {_ms(row['median_s'])} | {_ms(row['min_s'])} | {_ms(row['max_s'])} | "
                     f"{row['repeats']} | {comp} | {row.get('iterations', '')} | {row.get('converged', '')} |")
        L += ["", "api_* rows: the public eager `kdjax.solve_teacher` / `solve_student` (regime checks, own "
              "cached jit, convergence warning); the others: `jax.jit` of the raw solve with traced params.", ""]

    if "grid" in b and "teacher" in b["grid"]:
        g = b["grid"]
        L += ["## (b) Grid throughput (`kdjax.sweep`)", "",
              "| solver | points | batch | run (2nd call) | per point | compile (1st - 2nd) | converged | "
              "iterations max / mean |", "|---|---|---|---|---|---|---|---|"]

        def row(label, r):
            comp = f"{r['compile_s']:.1f} s" if "compile_s" in r else "(shared)"
            return (f"| {label} | {r['points']} | {r.get('batch_size', '')} | {_ms(r['seconds'])} | "
                    f"{_ms(r['ms_per_point'] / 1e3)} | {comp} | {r['converged_fraction']:.3f} | "
                    f"{r['max_iterations']} / {r['mean_iterations']:.1f} |")

        for mode, rows in g["teacher"].items():
            for r in rows.values():
                L.append(row(f"teacher sweep {mode} (lam_t, alpha)", r))
        if g.get("teacher_fixed_lam_t"):
            L.append(row("teacher sweep default (alpha, delta), lam_t fixed", g["teacher_fixed_lam_t"]))
        L.append(row("teacher loop of jit (lam_t, alpha)", g["teacher_python_loop"]))
        for name, r in g["student"].items():
            L.append(row(f"student {'loop of jit' if name == 'loop' else 'sweep ' + name} (lam_t, T)", r))
        L += ["", f"{g['note']} Ranges: {g['ranges']}.", ""]

    if "reference" in b and "points" in b["reference"]:
        r = b["reference"]
        L += ["## (c) SciPy reference (quad + brentq, damped iteration) vs kdjax, teacher", "",
              "| alpha | delta | rho | lam_t | max abs diff | reference | kdjax (median) | ratio "
              "| iterations ref / kdjax |",
              "|---|---|---|---|---|---|---|---|---|"]
        for p in r["points"]:
            q = p["point"]
            if "error" in p:
                L.append(f"| {q['alpha']} | {q['delta']} | {q['rho']} | {q['lam_t']} | {p['error']} | | | | |")
                continue
            L.append(f"| {q['alpha']} | {q['delta']} | {q['rho']} | {q['lam_t']} | {max(p['abs_diff'].values()):.1e} "
                     f"| {p['reference_s']:.2f} s | {_ms(p['kdjax_s'])} | {p['ratio']:.0f}x | "
                     f"{p['reference_iterations']} / {p['kdjax_iterations']} |")
        L += ["", f"Median ratio {r['median_ratio']:.0f}x; charging kdjax's compilation "
              f"({r['kdjax_compile_s']:.1f} s) to these points: {r['ratio_including_kdjax_compile']:.1f}x.", ""]

    if "simulation" in b and "simulations" in b["simulation"]:
        s = b["simulation"]
        L += ["## (d) Theory vs finite-N simulation", "",
              f"Theory (median warm solve): teacher {_ms(s['theory']['teacher']['median_s'])}, "
              f"student {_ms(s['theory']['student']['median_s'])}.", "",
              "| N | seeds | who | simulation | ratio | quantity | theory | sim mean +- sem | z |",
              "|---|---|---|---|---|---|---|---|---|"]
        for row in s["simulations"]:
            for who in ("teacher", "student"):
                if who not in row:
                    continue
                w = row[who]
                first = True
                for key, a in w["agreement"].items():
                    if not isinstance(a, dict):
                        continue
                    t = f"{w['sim_s']:.1f} s" if first and "sim_s" in w else ""
                    rt = f"{w['ratio']:.0f}x" if first and "ratio" in w else ""
                    L.append(f"| {row['N'] if first else ''} | {row['seeds'] if first else ''} | "
                             f"{who if first else ''} | {t} | {rt} | {key} | {_num(a['theory'], '.5f')} | "
                             f"{_num(a['sim_mean'], '.5f')} +- {_num(a['sim_sem'], '.5f')} | {_num(a['z'], '+.2f')} |")
                    first = False
        L += ["", s["note"], ""]

    if "recipe" in b and "grid" in b["recipe"]:
        r = b["recipe"]
        gr, gd = r["grid"], r["gradient"]
        L += ["## (e) Recipe search: gradient (optimize_kd) vs grid (sweep)", "",
              "| method | best error | at (lam_t, T) | solves | wall (compile excluded) | wall (compile included) |",
              "|---|---|---|---|---|---|",
              f"| sweep grid {gr['shape'][0]}x{gr['shape'][1]} | {gr['best_error']:.6f} | "
              f"({gr['best_lam_t']:.3g}, {gr['best_temperature']:.3g}) | {gr['solves']} | {gr['seconds']:.2f} s "
              f"| {gr['first_call_s']:.1f} s |",
              f"| optimize_kd from {gd['start']} | {gd['best_error']:.6f} | "
              f"({gd['params']['lam_t']:.3g}, {gd['params']['temperature']:.3g}) | {gd['solves']} | "
              f"{gd['seconds']:.2f} s | {gd['first_call_s']:.1f} s |", "",
              f"Gradient path reaches grid best + 1e-3 at iteration {gd['first_iteration_within_1e_3_of_grid']} "
              f"of {gd['iterations']}. Wall-time ratio grid / gradient: {r['time_ratio_grid_over_gradient']:.1f}x "
              f"(compile excluded), {r['time_ratio_including_compile']:.1f}x (included). {r['note']}", ""]
        if "chain" in r:
            L += chain_markdown(r["chain"])

    if "chain_mc" in b and "chains" in b["chain_mc"]:
        import chain_mc

        L += ["## (g) Same-input chain (depth 3): kdjax vs Monte Carlo saddle point (`chain_mc.py`)", ""]
        L += [line.replace("### ", "#### ", 1) if line.startswith("### ") else line
              for line in chain_mc.section(b["chain_mc"])]

    if "cold" in b and "columns" in b["cold"]:
        import cold

        L += ["## (f) Cold start: fresh processes, persistent compilation cache (`cold.py`)", ""]
        L += cold.markdown(b["cold"]).split("\n", 2)[2].replace("\n## ", "\n### ").splitlines()
        L.append("")

    L += ["## Wall time per benchmark", "", "| benchmark | wall |", "|---|---|"]
    L += [f"| {k} | {v['_wall_s']:.1f} s |" for k, v in b.items()]
    return "\n".join(L) + "\n"


def chain_markdown(c: dict) -> list[str]:
    """The recipe benchmark's chain rows: a self-distillation chain over per-generation (T, lam)."""
    pr, gr, gd = c["problem"], c["grid"], c["gradient"]

    def at(values):
        return ", ".join(f"{values[n]:.3g}" for n in pr["free"])

    def errs(e):
        return " / ".join(f"{x:.5f}" for x in e)

    return ["### (e') Self-distillation chain: per-generation (T, lam), gradient vs grid", "",
            f"Depth {pr['depth']}, {pr['data']} inputs, gamma = 1, a = 0, label noise "
            f"{pr['mixture']['label_noise']}, alpha = {pr['mixture']['alpha']}, teacher lam_t = {pr['lam_t']}; "
            f"objective: the last generation's error.", "",
            f"| method | best error | at ({', '.join(pr['free'])}) | errors gen 0 / 1 / 2 | solves "
            "| wall (compile excluded) | wall (compile included) |",
            "|---|---|---|---|---|---|---|",
            f"| grid {'x'.join(map(str, gr['shape']))} | {gr['best_error']:.6f} | ({at(gr['best'])}) "
            f"| {errs(gr['chain_errors'])} | {gr['solves']} | {gr['seconds']:.2f} s | {gr['first_call_s']:.1f} s |",
            f"| optimize_kd from T = {gd['start']['temperature']}, lam = {gd['start']['lam']} "
            f"(error {gd['start_error']:.6f}) | {gd['best_error']:.6f} | ({at(gd['params'])}) "
            f"| {errs(gd['chain_errors'])} | {gd['solves']} | {gd['seconds']:.2f} s | {gd['first_call_s']:.1f} s |",
            "", f"Best depth at the gradient optimum: {gd['best_depth']}. {c['note']}", ""]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run, a few minutes)")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(ORDER))
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output prefix (.json, .md)")
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s] or None
    res = _jsonable(run_suite(args.quick, only))
    with open(args.out + ".json", "w") as fh:
        json.dump(res, fh, indent=1)
    with open(args.out + ".md", "w") as fh:
        fh.write(markdown(res))
    print(f"wrote {args.out}.json and {args.out}.md ({res['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
