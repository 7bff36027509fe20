"""Theory against finite-N simulation of the very same objectives (``kdjax validate``).

For each configuration of a panel, the asymptotic solve is compared with the mean over seeds
of a finite-``N`` experiment.  A row passes when

    |theory - mean| <= Z_MAX * sem + FINITE_SIZE * (|theory| + 1) * 1000 / N,

i.e. within ``Z_MAX`` standard errors plus a finite-size allowance that shrinks as ``1/N``.
The error rows compare the theory's ``gen_error`` with the docs/model.md formula evaluated at the
mean simulated overlaps (per-seed errors carry an extra bias from bias fluctuations).

The chain panel (``chain_panel``) compares ``solve_chain`` with ``simulate_chain`` generation by
generation (rows ``genK/quantity``, ``r`` and ``agreement`` against generation ``K - 1``,
``r_teacher`` against the teacher), the error of each generation compared as above.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._generations import solve_chain, solve_student, solve_teacher
from ._observables import gen_error
from ._params import Mixture, Student, Teacher
from ._simulate import simulate_chain, simulate_student, simulate_teacher

Z_MAX = 3.0
FINITE_SIZE = 0.02


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    mixture: Mixture
    teacher: Teacher
    student: Student | None = None
    students: tuple = ()  # a distillation chain: generations 1..K (then ``student`` is None)


@dataclasses.dataclass(frozen=True)
class Row:
    case: str
    quantity: str
    theory: float
    mean: float
    sem: float
    allowance: float

    @property
    def z(self) -> float:
        return (self.mean - self.theory) / self.sem if self.sem > 0 else float("inf") * (self.mean != self.theory)

    @property
    def ok(self) -> bool:
        return abs(self.mean - self.theory) <= Z_MAX * self.sem + self.allowance


def teacher_panel(quick: bool = False) -> list[Case]:
    M, T = Mixture, Teacher
    cases = [
        Case("logistic a=3 lam=0.1", M(3.0, 1.0), T("logistic", 0.1)),
        Case("logistic a=0.5 rho=0.3 lam=1", M(0.5, 0.5, 0.3), T("logistic", 1.0)),
        Case("logistic a=5 lam=0", M(5.0, 1.0), T("logistic", 0.0)),
        Case("square a=2 lam=0.01", M(2.0, 1.0), T("square", 0.01)),
        Case("square a=0.6 rho=0.3 lam=0.5", M(0.6, 0.8, 0.3), T("square", 0.5)),
        Case("hinge a=3 lam=0.1", M(3.0, 1.0), T("hinge", 0.1)),
        Case("hinge a=0.8 rho=0.3 lam=1", M(0.8, 0.5, 0.3), T("hinge", 1.0)),
        Case("logistic a=3 eta=0.2 lam=0.1", M(3.0, 1.0, 0.5, 0.2), T("logistic", 0.1)),
        Case("square a=2 rho=0.3 eta=0.1", M(2.0, 1.0, 0.3, 0.1), T("square", 0.1)),
    ]
    return [cases[i] for i in (0, 3, 5)] if quick else cases


def kd_panel(quick: bool = False) -> list[Case]:
    M, T, S = Mixture, Teacher, Student
    lg, sq = T("logistic", 0.1), T("square", 0.1)
    cases = [
        Case("self-distil g=1 T=1 a=0", M(3.0, 1.0), lg, S(1.0, 1.0, 0.0, 0.0)),
        Case("g=0.5 T=2 a=0.3 ls=0.01", M(3.0, 1.0), lg, S(0.5, 2.0, 0.3, 0.01)),
        Case("g=0.5 T=2 a=0.3 fresh", M(3.0, 1.0), lg, S(0.5, 2.0, 0.3, 0.01, "fresh", 3.0)),
        Case("g=0.7 T=0.5 a=0 sq", M(3.0, 1.0), sq, S(0.7, 0.5, 0.0, 0.0)),
        Case("g=0.7 T=5 a=0.5 ls=0.1", M(2.0, 1.0), lg, S(0.7, 5.0, 0.5, 0.1)),
        Case("g=0.5 a=1 hard ls=0.1", M(2.0, 1.0), lg, S(0.5, 1.0, 1.0, 0.1)),
        Case("g=1 T=3 a=0 ls=0.05 rho=.3", M(2.0, 0.8, 0.3), lg, S(1.0, 3.0, 0.0, 0.05)),
        Case("g=0.5 alpha<g ls=0.05", M(0.4, 0.5), T("logistic", 0.5), S(0.5, 2.0, 0.0, 0.05)),
        Case("g=0.7 alpha<g fresh sq", M(0.5, 0.5), T("square", 0.5), S(0.7, 1.0, 0.3, 0.05, "fresh", 0.5)),
        Case("g=0.7 T=1 a=0.3 fresh sq", M(2.0, 1.0), sq, S(0.7, 1.0, 0.3, 0.0, "fresh", 2.5)),
        Case("g=1 T=0.5 a=0 fresh", M(3.0, 1.0), lg, S(1.0, 0.5, 0.0, 0.01, "fresh", 2.0)),
        Case("g=0.5 T=5 a=0 sq", M(1.5, 1.0), sq, S(0.5, 5.0, 0.0, 0.1)),
        Case("g=0.5 T=2 a=0.3 eta=0.2", M(3.0, 1.0, 0.5, 0.2), lg, S(0.5, 2.0, 0.3, 0.01)),
        Case("g=0.7 T=1 a=0.5 eta=0.1 fresh", M(2.0, 1.0, 0.4, 0.1), lg, S(0.7, 1.0, 0.5, 0.05, "fresh", 2.0)),
    ]
    return [cases[i] for i in (1, 2, 3)] if quick else cases


def chain_panel(quick: bool = False) -> list[Case]:
    """Distillation chains (docs/chains.md): same and fresh inputs, depth 1 to 3, label noise 0 to
    0.3, shrinking and constant gamma, soft and hard labels."""
    M, T, S = Mixture, Teacher, Student
    lg = T("logistic", 0.05)
    sd = S(1.0, 2.0, 0.0, 0.01)  # self-distillation, T = 2
    cases = [
        Case("self-distil x3 T=2 a=0", M(2.0, 1.0), lg, students=(sd, sd, sd)),
        Case("self-distil x3 T=2 a=0 eta=0.1", M(2.0, 1.0, 0.5, 0.1), lg, students=(sd, sd, sd)),
        Case("self-distil x3 T=2 a=0 eta=0.3", M(2.0, 1.0, 0.5, 0.3), lg, students=(sd, sd, sd)),
        Case("g=1,.7,.5 T=2 a=0.3 eta=0.2", M(2.0, 1.0, 0.5, 0.2), lg,
             students=tuple(S(g, 2.0, 0.3, 0.01) for g in (1.0, 0.7, 0.5))),
        Case("fresh x3 g=1,.7,.7 eta=0.1", M(2.0, 1.0, 0.5, 0.1), lg,
             students=(S(1.0, 2.0, 0.3, 0.01, "fresh", 2.0), S(0.7, 1.0, 0.0, 0.01, "fresh", 1.5),
                       S(0.7, 3.0, 0.3, 0.01, "fresh", 2.5))),
        Case("fresh then same g=.8 rho=.3", M(2.0, 1.0, 0.3, 0.1), T("logistic", 0.1),
             students=(S(0.8, 2.0, 0.3, 0.01, "fresh", 2.5), S(0.8, 1.0, 0.0, 0.01))),
        Case("hard a=1 in the middle eta=0.1", M(2.0, 1.0, 0.5, 0.1), lg,
             students=(S(1.0, 2.0, 0.0, 0.01), S(0.7, 1.0, 1.0, 0.01), S(0.7, 2.0, 0.0, 0.01))),
        Case("same then fresh g=.7 eta=0.3", M(2.0, 1.0, 0.5, 0.3), T("logistic", 0.1),
             students=(S(0.7, 2.0, 0.3, 0.01), S(0.7, 2.0, 0.3, 0.01, "fresh", 2.0))),
        Case("one gen g=.7 T=2 a=0.3 eta=0.3", M(2.0, 1.0, 0.5, 0.3), lg,
             students=(S(0.7, 2.0, 0.3, 0.01),)),
    ]
    return [cases[i] for i in (8, 5)] if quick else cases


def _stats(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


def _rows(name, theory, sim, mixture, n_features, fields):
    scale = FINITE_SIZE * 1000.0 / n_features
    rows = []
    for f in fields:
        th = float(getattr(theory, f))
        mean, sem = _stats(getattr(sim, f))
        rows.append(Row(name, f, th, mean, sem, scale * (abs(th) + 1.0)))
    # Error formula at the mean overlaps; its s.e.m. from the per-seed formula values.
    m, q, b = (float(np.mean(getattr(sim, k))) for k in ("m", "q", "b"))
    at_mean = float(gen_error(m, q, b, mixture.delta, mixture.rho))
    _, sem = _stats(sim.gen_error)
    th = float(theory.gen_error)
    rows.append(Row(name, "gen_error", th, at_mean, sem, 0.25 * scale * th))
    return rows


def _chain_rows(case, n_features, seeds):
    theory = solve_chain(case.mixture, case.teacher, case.students)
    sim = simulate_chain(case.mixture, case.teacher, case.students, n_features=n_features,
                         seeds=seeds).check()
    rows = []
    for k, (th, gen) in enumerate(zip(theory.generations, sim.generations), start=1):
        fields = ("m", "q", "r", "r_teacher", "b", "agreement", "train_error")
        for row in _rows(case.name, th, gen, case.mixture, n_features, fields):
            rows.append(dataclasses.replace(row, quantity=f"gen{k}/{row.quantity}"))
    return rows


def run_case(case: Case, n_features: int, seeds: int) -> list[Row]:
    if case.students:
        return _chain_rows(case, n_features, seeds)
    if case.student is None:
        theory = solve_teacher(case.mixture, case.teacher)
        sim = simulate_teacher(case.mixture, case.teacher, n_features=n_features, seeds=seeds)
        return _rows(case.name, theory, sim, case.mixture, n_features, ("m", "q", "b"))
    theory = solve_student(case.mixture, case.teacher, case.student)
    sim = simulate_student(case.mixture, case.teacher, case.student, n_features=n_features, seeds=seeds)
    return _rows(case.name, theory, sim, case.mixture, n_features, ("m", "q", "r", "b"))


def run_panel(cases, n_features: int, seeds: int, progress=None) -> list[Row]:
    rows = []
    for i, case in enumerate(cases):
        rows.extend(run_case(case, n_features, seeds))
        if progress is not None:
            progress(i + 1, len(cases), case.name)
    return rows


def format_rows(rows: list[Row]) -> str:
    w = max([10] + [len(r.quantity) for r in rows])
    head = f"{'case':32s} {'qty':{w}s} {'theory':>11s} {'simulation':>22s} {'z':>7s}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        sim = f"{r.mean:.5f} +- {r.sem:.5f}"
        lines.append(
            f"{r.case:32s} {r.quantity:{w}s} {r.theory:11.5f} {sim:>22s} {r.z:7.2f}  {'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)
