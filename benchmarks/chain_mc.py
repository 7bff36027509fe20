"""(g) Same-input chains: kdjax's exact solve vs the published Monte Carlo approach (issue 17, Sec. 7).

Takanami, Takahashi & Sakata (NeurIPS 2025, arXiv 2501.16226) solve the saddle-point equations of
repeated self-distillation by averaging every Gaussian expectation over ``nsamp = 10^4`` random
draws and iterating the equations with damping.  Their notebook (github taka255/self-distillation-analysis,
``Theory/Self_Distillaton.ipynb``, ``t_replica``) draws ``xi = randn(nsamp, T)`` once per solve (seed
123), shares it across the label pairs and the generations, solves the generations one after the other,
damps with ``damping = 0.9`` in its experiments (0.95 by default) as the weight of the new value, and
stops when the conjugate parameters move by less than ``tol = 1e-7`` (``max_iter = 700``).

To isolate the numerical method, this benchmark applies that approach to kdjax's OWN equations
(docs/chains.md): ``MonteCarloKD`` subclasses ``kdjax._generations.same.SameKD`` so that its nodes
are ``DRAWS`` joint draws of the standard fields ``(e_0, ..., e_k) ~ N(0, I)`` per label row with equal
weights instead of the nested quadrature rule; the map (C.2)-(C.11) is SameKD's.  The teacher is
solved by kdjax (a 1-D channel integral); generations 1..3 are solved by Monte Carlo (``SameKD`` at
depth 1 is the student's equations, docs/chains.md Sec. 6), each by plain damped iteration
``x <- (1 - eta) x + eta F(x)`` with ``eta = ETA`` in a Python loop around a jitted map:

* ``fixed``: one draw per seed, shared by every generation and iteration (what the notebook does);
  stops when ``max|F(x) - x| <= TOL max|x|`` (relative, over the whole state) or after ``MAX_ITER``;
* ``fresh``: a new draw at every iteration (the frame of the earlier generations is recomputed on
  it); the iteration cannot meet a tolerance below the Monte Carlo noise, so it runs a fixed budget
  of ``FRESH_ITER`` iterations per generation and reports the last iterate.

kdjax's row is ``kdjax.solve_chain`` with the default ``SolverConfig``.  Reported per generation:
``gen_error``, ``q`` and ``agreement`` (with the previous generation) from both, the Monte Carlo mean,
standard deviation and range over seeds, the absolute error of the mean and the RMS error over seeds
against kdjax; and the time of each method: the first call in the process (compilation included)
and the steady state (later calls), wall and process CPU time.

    python benchmarks/chain_mc.py [--quick]     # writes benchmarks/results_chain_mc[_quick].{json,md}
"""

from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
from _common import jnp, kdjax, machine_info, np  # noqa: E402  (turns on float64)
from jax.flatten_util import ravel_pytree  # noqa: E402

from kdjax._generations.base import Solved  # noqa: E402
from kdjax._generations.same import Context, Frame, SameKD, _Nodes  # noqa: E402
from kdjax._generations.solve import fold, generations_of, with_records  # noqa: E402
from kdjax._observables import agreement_unchecked  # noqa: E402
from kdjax._quadrature import label_rows  # noqa: E402

DRAWS = 10_000  # per label row, as the notebook's nsamp
ETA = 0.9  # the notebook's damping in its experiments (weight of the new value)
TOL = 1e-6  # fixed draws: max|F(x) - x| <= TOL max|x|
MAX_ITER = 700  # the notebook's max_iter
FRESH_ITER = 50  # fresh draws: iterations per generation (about twice what fixed draws need)
MAX_LEVELS = 4  # fields e_0..e_3 of a depth-3 chain, drawn at once (the notebook's randn(nsamp, T))
CONFIG = kdjax.SolverConfig()

MIXTURE = dict(alpha=2.0, delta=1.0, label_noise=0.2)
TEACHER = ("logistic", 0.01)
STUDENT = dict(temperature=2.0, lam=0.01, data="same")
CHAINS = {  # name: ((gamma, a) per generation)
    "sd": ((1.0, 0.0), (1.0, 0.0), (1.0, 0.0)),
    "sh": ((1.0, 0.3), (0.7, 0.3), (0.5, 0.3)),
}
KEYS = ("gen_error", "q", "agreement")


def chain(name):
    students = tuple(kdjax.Student(gamma=g, hard_weight=a, **STUDENT) for g, a in CHAINS[name])
    return kdjax.Mixture(**MIXTURE), kdjax.Teacher(*TEACHER), students


# ------------------------------------------------------------------ the Monte Carlo generation
class MCFrame(Frame):
    """``Frame`` at Monte Carlo nodes: arrays ``(R, P)``, ``P = DRAWS`` equal weights, with the
    draws ``e_last`` of generation ``k``'s own field (the quadrature rule adds that level itself)."""

    e_last: jax.Array


def mc_frame(history, mixture, config, e) -> MCFrame:
    """Generations ``0..k-1`` at the draws ``e`` (``(k + 1, R, P)``): ``same._frame``'s algebra (C.2),
    (C.4) with joint draws in place of the nested rule."""
    k = len(history)
    records = [s.record for s in history]
    y, y_obs, weight = label_rows(mixture)
    sd = jnp.sqrt(mixture.delta)
    shape = e.shape[1:]
    zero = jnp.zeros(shape, y.dtype)
    t, teacher = records[0], history[0]
    omega0 = y * t.m + t.b + sd * t.L[0] * e[0]  # L_00 = sqrt(q_0)
    h0, s0 = jax.jvp(lambda o: teacher.generation.output(teacher.state, o, y_obs, config), (omega0,),
                     (jnp.ones_like(omega0),))
    h, f = [h0], [(h0 - omega0) / t.V[0]]
    dh = [[s0] + [zero] * (k - 1)]  # d h_j / d omega_l
    df = [[(s0 - 1.0) / t.V[0]] + [zero] * (k - 1)]
    for j in range(1, k):
        g, generation = records[j], history[j].generation
        omega = y * g.m + g.b + sd * sum(g.L[l] * e[l] for l in range(j + 1))
        omega_p = omega + sum(g.V[l] * f[l] for l in range(j))  # (C.2)
        domega_p = [jnp.broadcast_to((1.0 if l == j else 0.0) + sum(g.V[m] * df[m][l] for m in range(j)), shape)
                    for l in range(k)]
        hj, d_o, d_hp = generation.output_partials(omega_p, h[j - 1], g.V[j], y_obs, config)
        dhj = [d_o * domega_p[l] + d_hp * dh[j - 1][l] for l in range(k)]
        h.append(hj)
        f.append((hj - omega_p) / g.V[j])
        dh.append(dhj)
        df.append([(dhj[l] - domega_p[l]) / g.V[j] for l in range(k)])
    return MCFrame(y=y, y_obs=y_obs, weight=weight, e=e[:k], f=jnp.stack(f),
                   df=jnp.stack([jnp.stack(row) for row in df]), h_prev=h[k - 1], dh_prev=jnp.stack(dh[k - 1]),
                   w=jnp.full(shape, 1.0 / shape[-1], y.dtype), e_last=e[k])


class MonteCarloKD(SameKD):
    """``SameKD`` whose Gaussian averages are means over ``draws`` joint draws per label row, from ``key``."""

    key: jax.Array
    draws: int = eqx.field(static=True, default=DRAWS)

    def prepare(self, mixture, history, config) -> Context:
        y, _, _ = label_rows(mixture)
        e = jax.random.normal(self.key, (MAX_LEVELS, y.shape[0], self.draws), y.dtype)[: len(history) + 1]
        return Context(records=tuple(s.record for s in history),
                       frame=mc_frame(history, mixture, config, e))

    def _nodes(self, x, mixture, frame: MCFrame, config):
        """Generation ``k`` at the draws: ``same.SameKD._nodes`` with the last level drawn, not a rule."""
        k = frame.e.shape[0]
        sd = jnp.sqrt(mixture.delta)
        omega = (frame.y * x.m + x.b + sd * jnp.tensordot(x.L, frame.e, axes=1)
                 + sd * jnp.sqrt(jnp.maximum(x.sigma2, 0.0)) * frame.e_last)
        omega_p = omega + jnp.tensordot(x.V[:k], frame.f, axes=1)  # (C.2)
        h, d_o, d_hp = self.output_partials(omega_p, frame.h_prev, x.V[k], frame.y_obs, config)
        ex = lambda a: a[..., None]  # a level axis of one node: SameKD sums over the last axis
        return _Nodes(f=ex((h - omega_p) / x.V[k]), f_o=ex((d_o - 1.0) / x.V[k]), f_hp=ex(d_hp / x.V[k]), h=ex(h),
                      h_prev=ex(frame.h_prev), omega_p=ex(omega_p), w=ex(frame.w))


@jax.jit
def _prepare(generation, mixture, history):
    return generation.prepare(mixture, history, CONFIG)


@jax.jit
def _step(generation, x, mixture, context):
    """One damped step and the relative residual ``max|F(x) - x| / max|x|`` at ``x``."""
    fx = generation.map(x, mixture, context, CONFIG)
    a, b = ravel_pytree(x)[0], ravel_pytree(fx)[0]
    residual = jnp.max(jnp.abs(b - a)) / jnp.max(jnp.abs(a))
    return jax.tree.map(lambda u, v: (1.0 - ETA) * u + ETA * v, x, fx), residual


@jax.jit
def _observe(generation, x, mixture, context):
    return generation.observables(x, mixture, context), generation.summary(x, context)


def solve_mc(mixture, teacher, students, seed: int, fresh: bool) -> list:
    """The chain with the teacher by kdjax and generations 1.. by Monte Carlo: a row per generation."""
    (t,) = fold(mixture, generations_of(teacher, ()), CONFIG)
    solved, rows = (t.solved,), []
    key = jax.random.PRNGKey(seed)
    for k, student in enumerate(students, start=1):
        c0, w0 = time.process_time(), time.perf_counter()
        solved = with_records(solved, mixture, CONFIG)
        generation = MonteCarloKD(student, key)
        context = _prepare(generation, mixture, solved)
        x = generation.start(mixture, context)
        budget = FRESH_ITER if fresh else MAX_ITER
        for it in range(1, budget + 1):  # noqa: B007 (the count is reported)
            if fresh:  # a new draw: the earlier generations at the new nodes, then one step
                generation = MonteCarloKD(student, jax.random.fold_in(jax.random.fold_in(key, k), it))
                context = _prepare(generation, mixture, solved)
            x, residual = _step(generation, x, mixture, context)
            if not fresh and float(residual) <= TOL:
                break
        obs, summary = _observe(generation, x, mixture, context)
        p = solved[-1].summary  # the agreement with the previous generation, as GenerationResult.agreement
        obs = dict(obs, agreement=agreement_unchecked(p.m, p.q, p.b, obs["m"], obs["q"], obs["r"], obs["b"],
                                                      mixture.delta, mixture.rho))
        jax.block_until_ready(obs)
        rows.append(dict({key_: float(obs[key_]) for key_ in KEYS}, iterations=it, residual=float(residual),
                         converged=bool(fresh or float(residual) <= TOL), wall_s=time.perf_counter() - w0,
                         cpu_s=time.process_time() - c0))
        solved = solved + (Solved(generation, x, summary),)
    return rows


# ------------------------------------------------------------------ timing
def _clock(fn, *args):
    c0, w0 = time.process_time(), time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, dict(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0)


def _steady(times: list) -> dict:
    if not times:
        return {}
    return dict(wall_s=statistics.median(t["wall_s"] for t in times),
                cpu_s=statistics.median(t["cpu_s"] for t in times),
                min_wall_s=min(t["wall_s"] for t in times), repeats=len(times))


def _kdjax_rows(res) -> list:
    return [dict({k: float(getattr(g, k)) for k in KEYS}, iterations=int(g.iterations),
                 converged=bool(g.converged)) for g in res.generations]


def run(quick: bool) -> dict:
    seeds = 5 if quick else 20
    kd_repeats = 5 if quick else 20
    out = dict(
        settings=dict(draws_per_label_row=DRAWS, eta=ETA, tol_relative=TOL, max_iter=MAX_ITER,
                      fresh_iterations=FRESH_ITER, seeds=seeds, kdjax_repeats=kd_repeats, mixture=MIXTURE,
                      teacher=TEACHER, student=STUDENT, chains={k: [dict(gamma=g, a=a) for g, a in v]
                                                                for k, v in CHAINS.items()},
                      mc_generations="teacher by kdjax (exact channel rule); generations 1-3 by Monte Carlo"),
        chains={},
    )
    for name in CHAINS:
        mixture, teacher, students = chain(name)
        solve = lambda m=mixture, t=teacher, s=students: kdjax.solve_chain(m, t, s)
        res, first = _clock(solve)
        reps = [_clock(solve)[1] for _ in range(kd_repeats)]
        kd = _kdjax_rows(res)
        entry = dict(kdjax=dict(generations=kd, first_call=first, steady=_steady(reps)), mc={})
        print(f"  {name}: kdjax first {first['wall_s']:.1f} s, steady {entry['kdjax']['steady']['wall_s']:.3f} s",
              flush=True)
        for variant in ("fixed", "fresh"):
            runs, times = [], []
            for seed in range(seeds):
                rows, t = _clock(solve_mc, mixture, teacher, students, seed, variant == "fresh")
                runs.append(rows)
                times.append(t)
                print(f"  {name} {variant} seed {seed}: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s cpu, "
                      f"iterations {[r['iterations'] for r in rows]}", flush=True)
            gens = []
            for k, ref in enumerate(kd):
                g = dict(iterations=[r[k]["iterations"] for r in runs], converged=all(r[k]["converged"] for r in runs),
                         final_residual=[r[k]["residual"] for r in runs],
                         wall_s=statistics.median(r[k]["wall_s"] for r in runs[1:] or runs))
                for key in KEYS:
                    v = np.array([r[k][key] for r in runs])
                    g[key] = dict(mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                  min=float(v.min()), max=float(v.max()), values=v.tolist(),
                                  abs_error_of_mean=float(abs(v.mean() - ref[key])),
                                  rms_error=float(np.sqrt(np.mean((v - ref[key]) ** 2))))
                gens.append(g)
            entry["mc"][variant] = dict(generations=gens, first_call=times[0], steady=_steady(times[1:]))
        out["chains"][name] = entry
    out["note"] = (
        "MC = SameKD's map with Monte Carlo nodes (benchmarks/chain_mc.py), teacher by kdjax, generations 1-3 "
        f"by MC, {DRAWS} draws per label row (4 rows: label noise), damped iteration eta = {ETA}. fixed: one "
        f"draw per seed, stop at max|F(x)-x| <= {TOL:g} max|x| (at most {MAX_ITER}); fresh: a new draw every "
        f"iteration, {FRESH_ITER} iterations per generation, last iterate. First call: the first solve in the "
        "process (compilation included; the second chain reuses the first's compiled programs); steady: "
        "median of the later calls (kdjax: repeats; MC: the later seeds). Times: wall and process CPU.")
    return out


# ------------------------------------------------------------------ markdown
def _t(d):
    if not d:
        return "-"
    w, c = d["wall_s"], d["cpu_s"]
    return f"{w:.2f} s ({c:.1f} s cpu)" if w >= 1 else f"{1e3 * w:.0f} ms ({1e3 * c:.0f} ms cpu)"


def section(res: dict) -> list:
    """Markdown lines of the results (tables per chain, timings)."""
    s = res["settings"]
    L = [f"Chains: alpha {MIXTURE['alpha']}, delta {MIXTURE['delta']}, label noise {MIXTURE['label_noise']}, "
         f"logistic teacher lam {TEACHER[1]}; students T = 2, lam = 0.01, same inputs; sd: gamma 1, a 0 "
         f"(x3); sh: gamma 1, 0.7, 0.5, a 0.3. MC: {s['draws_per_label_row']} draws per label row, eta "
         f"{s['eta']}, {s['seeds']} seeds (mean +- std over seeds).", ""]
    first_chain = next(iter(res["chains"]))
    for name, c in res["chains"].items():
        kd = c["kdjax"]["generations"]
        L += [f"### Chain {name}", "",
              "| gen | quantity | kdjax | MC fixed draws (mean +- std) | abs err of mean | rms err "
              "| MC fresh draws (mean +- std) | abs err of mean | rms err |",
              "|---|---|---|---|---|---|---|---|---|"]
        for k, ref in enumerate(kd):
            for key in KEYS:
                cells = [str(k + 1) if key == KEYS[0] else "", key, f"{ref[key]:.6f}"]
                for v in ("fixed", "fresh"):
                    g = c["mc"][v]["generations"][k][key]
                    cells += [f"{g['mean']:.6f} +- {g['std']:.1e}", f"{g['abs_error_of_mean']:.1e}",
                              f"{g['rms_error']:.1e}"]
                L.append("| " + " | ".join(cells) + " |")
        L += ["", "| method | first call (compile included) | steady state (whole chain) | iterations per "
              "generation |", "|---|---|---|---|",
              f"| kdjax `solve_chain` | {_t(c['kdjax']['first_call'])}"
              f"{'' if name == first_chain else ' (programs compiled before)'} | {_t(c['kdjax']['steady'])} | "
              f"{', '.join(str(g['iterations']) for g in kd)} (damped + Newton) |"]
        for v in ("fixed", "fresh"):
            m = c["mc"][v]
            where = "" if (v, name) == ("fixed", first_chain) else " (programs compiled before)"
            its = ", ".join(f"{min(g['iterations'])}-{max(g['iterations'])}" for g in m["generations"])
            conv = "" if v == "fresh" or all(g["converged"] for g in m["generations"]) else " (**not all converged**)"
            L.append(f"| MC {v} draws | {_t(m['first_call'])}{where} | {_t(m['steady'])} | {its}{conv} |")
        ratio = {v: c["mc"][v]["steady"]["wall_s"] / c["kdjax"]["steady"]["wall_s"] for v in ("fixed", "fresh")
                 if c["mc"][v]["steady"]}
        L += ["", "Steady wall time MC / kdjax: " + ", ".join(f"{v} {r:.0f}x" for v, r in ratio.items()) + ".", ""]
    L += [res["note"], ""]
    return L


def markdown(res: dict) -> str:
    m = res.get("machine", {})
    L = [f"# Same-input chain: kdjax vs Monte Carlo saddle point ({res.get('mode', '?')} mode)", "",
         f"CPU: {m.get('cpu_model', '?')} ({m.get('cpu_cores_available', '?')} cores), jax {m.get('jax', '?')}, "
         f"kdjax source sha256 {m.get('kdjax_source_sha256', '?')}; load average before/after "
         f"{res.get('_loadavg_before_after', '?')}; wall {res.get('_wall_s', 0):.0f} s.", ""]
    return "\n".join(L + section(res)) + "\n"


def main(argv=None):
    import json

    from run_all import _jsonable

    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    res = run(quick)
    res.update(mode="quick" if quick else "full", machine=machine_info(), _wall_s=time.perf_counter() - t0,
               _loadavg_before_after=[round(load0, 2), round(os.getloadavg()[0], 2)])
    res = _jsonable(res)
    prefix = os.path.join(HERE, "results_chain_mc" + ("_quick" if quick else ""))
    with open(prefix + ".json", "w") as fh:
        json.dump(res, fh, indent=1)
    with open(prefix + ".md", "w") as fh:
        fh.write(markdown(res))
    print(markdown(res))
    print(f"wrote {prefix}.json and {prefix}.md ({res['_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
