"""Theory against finite-N simulation of the very same objectives (``kdjax validate``).

For each configuration of a panel, the asymptotic solve is compared with the mean over seeds
of a finite-``N`` experiment.  A row passes when

    |theory - mean| <= Z_MAX * sem + FINITE_SIZE * (|theory| + 1) * 1000 / N,

i.e. within ``Z_MAX`` standard errors plus a finite-size allowance that shrinks as ``1/N``.
The error rows compare the theory's ``gen_error`` with the docs/model.md formula evaluated at the
mean simulated overlaps (per-seed errors carry an extra bias from bias fluctuations).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._generations import solve_student, solve_teacher
from ._observables import gen_error
from ._params import Mixture, Student, Teacher
from ._simulate import simulate_student, simulate_teacher

Z_MAX = 3.0
FINITE_SIZE = 0.02


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    mixture: Mixture
    teacher: Teacher
    student: Student | None = None


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


def run_case(case: Case, n_features: int, seeds: int) -> list[Row]:
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
    head = f"{'case':32s} {'qty':10s} {'theory':>11s} {'simulation':>22s} {'z':>7s}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        sim = f"{r.mean:.5f} +- {r.sem:.5f}"
        lines.append(
            f"{r.case:32s} {r.quantity:10s} {r.theory:11.5f} {sim:>22s} {r.z:7.2f}  {'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)
