"""Same-input distillation chains (docs/chains.md): first call per added generation and steady state.

Two chains on ``Mixture(2, 1, label_noise=0.2)`` with a logistic teacher (``lam_t = 0.01``), every
generation ``T = 2``, ``lam = 0.01``, same inputs:

* ``sd``: self-distillation, ``gamma = 1``, ``a = 0`` at every generation (Takanami et al.'s setting);
* ``shrinking``: ``gamma = 1, 0.7, 0.5, 0.4``, ``a = 0.3``.

Each chain runs in a fresh process (empty compilation cache): ``kdjax.solve_chain`` at depth 1,
then 2, 3, 4.  The first call at each depth is what a user waits for when the chain grows by one
generation (trace and compile of the new generation's program and of the earlier generations'
records, then the solve); the steady state is the median of 5 further calls of the whole chain.
Targets (issue 17): depth 2 at most 50 ms, depth 4 at most 500 ms after compilation; each added
generation's first call at most 5 s.

Run alone: ``python benchmarks/chain.py [--quick]`` (quick: depth <= 3, 3 calls).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import kdjax
name, depth, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mix, teacher = kdjax.Mixture(2.0, 1.0, label_noise=0.2), kdjax.Teacher("logistic", 0.01)
gammas, a = ((1.0,) * 4, 0.0) if name == "sd" else ((1.0, 0.7, 0.5, 0.4), 0.3)
rows = []
for k in range(1, depth + 1):
    students = [kdjax.Student(g, 2.0, a, 0.01) for g in gammas[:k]]
    run = lambda: jax.block_until_ready(kdjax.solve_chain(mix, teacher, students))
    t0 = time.perf_counter(); chain = run(); first = time.perf_counter() - t0
    steady = []
    for _ in range(calls):
        t0 = time.perf_counter(); run(); steady.append(time.perf_counter() - t0)
    rows.append(dict(depth=k, first_call_s=first, steady_s=steady, converged=bool(chain.converged),
                     iterations=[int(g.iterations) for g in chain.generations],
                     gen_error=[float(g.gen_error) for g in chain.generations]))
print(json.dumps(rows))
"""

TARGETS = dict(steady_depth2_s=0.05, steady_depth4_s=0.5, added_generation_first_call_s=5.0)


def measure(name: str, depth: int, calls: int) -> list:
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(depth), str(calls)], capture_output=True,
                         text=True, check=True, env=os.environ | {"JAX_ENABLE_X64": "1"})
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    for r in rows:
        r["steady_median_s"] = statistics.median(r.pop("steady_s"))
    return rows


def run(quick: bool) -> dict:
    depth, calls = (3, 3) if quick else (4, 5)
    chains = {}
    for name in ("sd", "shrinking"):
        chains[name] = measure(name, depth, calls)
        for r in chains[name]:
            print(f"  chain {name} depth {r['depth']}: first call {r['first_call_s']:.1f} s, "
                  f"steady {1e3 * r['steady_median_s']:.0f} ms, iterations {r['iterations']}", flush=True)
    return dict(chains=chains, targets=TARGETS)


def markdown(res: dict) -> str:
    lines = ["| chain | depth | first call (s) | steady median (ms) | iterations per generation | converged |",
             "|---|---|---|---|---|---|"]
    for name, rows in res["chains"].items():
        for r in rows:
            lines.append(f"| {name} | {r['depth']} | {r['first_call_s']:.1f} | {1e3 * r['steady_median_s']:.0f} | "
                         f"{r['iterations']} | {'yes' if r['converged'] else '**no**'} |")
    t = res["targets"]
    lines += ["", f"Targets: depth 2 <= {1e3 * t['steady_depth2_s']:.0f} ms, depth 4 <= "
              f"{1e3 * t['steady_depth4_s']:.0f} ms after compilation; each added generation's first call <= "
              f"{t['added_generation_first_call_s']:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    res = run(quick)
    suffix = "_quick" if quick else ""
    with open(os.path.join(HERE, f"results_chain{suffix}.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = markdown(res)
    with open(os.path.join(HERE, f"results_chain{suffix}.md"), "w") as f:
        f.write("# Same-input chains: first call and steady state\n\n" + md + "\n")
    print(md)
