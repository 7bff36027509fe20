"""The plan of a reproduction run: every setting and grid size (``plan(quick)``), and progress."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

Progress = Callable[[str, int, int], None]

__all__ = ["Plan", "Progress", "plan", "tick"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every setting and grid size of a reproduction run (``plan(quick)`` builds the two used)."""

    quick: bool
    # the reference mixture and student (figures 1, 2, 4a)
    alpha: float = 2.0
    delta: float = 1.0
    rho: float = 0.3
    gamma: float = 0.5
    loss: str = "logistic"
    lam_t: tuple = tuple(np.geomspace(1e-3, 3.0, 13))
    temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    lam_s_grid: tuple = tuple(np.geomspace(1e-3, 3.0, 13))  # hard-label student's ridge
    # figure 1, right panel: the teacher's training labels flipped with probability noise_eta
    # (Mixture.label_noise), its KD student at noise_temperature over the lam_t grid, and the
    # Bayes-optimal error of that noisy mixture
    noise_eta: float = 0.2
    noise_temperature: float = 2.0
    # gradient searches (optimize_kd): the teacher's own optimum / every student optimum
    teacher_gradient: bool = True
    student_gradient: bool = True
    opt_steps: int = 40
    opt_tol: float = 1e-9
    opt_temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # figure 2b, subset of above
    # figure 3
    dd_alphas: tuple = tuple(np.geomspace(0.15, 8.0, 16))
    dd_refine: tuple = (0.92, 1.0, 1.08)  # extra alpha = factor x each predicted threshold
    dd_temperature: float = 2.0
    dd_lam_t: float = 0.1
    dd_lam_t_strong: float = 1.0
    dd_lam_s_small: float = 1e-4
    dd_lam_s_reg: float = 0.1
    # figure 4b: optimal (lam_t, T) over (alpha, gamma), each search started from a small grid
    map_alphas: tuple = (1.0, 2.0, 4.0)
    map_gammas: tuple = (0.25, 0.5, 0.75)
    map_lam_t: tuple = (0.03, 0.3, 3.0)
    map_temperatures: tuple = (0.5, 2.0, 8.0)
    # figure 5: simulations (distinct seeds at every point, so the points are independent)
    sim_n_features: int = 1000
    sim_seeds: int = 6
    sim_temperature: float = 2.0
    sim_lam_t: tuple = (0.003, 0.03, 0.3, 3.0)
    # (alpha, hard_weight, lam_s) on the same-input curves of figure 3 (teacher lam_t = dd_lam_t);
    # each new alpha costs one compilation of the simulator
    sim_dd_points: tuple = ((0.35, 0.0, 1e-4), (1.0, 0.0, 1e-4), (1.0, 1.0, 1e-4),
                            (2.0, 0.0, 1e-4), (2.0, 1.0, 1e-4), (2.0, 0.0, 0.1))
    # self-distillation chains (gamma = 1, a = 0, same inputs; paper/self_distillation.py)
    sd_data: str = "same"
    sd_alpha: float = 2.0
    sd_rho: float = 0.3  # unbalanced: at rho = 0.5 the best ridge is infinite (report header)
    sd_lam_t: float = 0.01
    sd_temperature: float = 2.0
    sd_lam: float = 0.01
    sd_depth: int = 4  # generations 1..K of (a)
    sd_label_noises: tuple = (0.0, 0.1, 0.2, 0.3)
    sd_sim_n_features: int = 1000
    sd_sim_seeds: int = 4
    sd_opt_noise: float = 0.2  # (b): optimize_kd over (T_k, lam_k), k = 1..sd_opt_depth
    sd_opt_depth: int = 2
    sd_opt_steps: int = 20
    sd_gain_alphas: tuple = (0.5, 1.0, 2.0, 4.0)  # (c): generation 1 vs its teacher
    sd_gain_noises: tuple = (0.0, 0.1, 0.2, 0.3)


def plan(quick: bool = False) -> Plan:
    """The default plan (<= 10 min on 2 cores) or the ``--quick`` one (<= 2 min)."""
    if not quick:
        return Plan(quick=False)
    return Plan(
        quick=True,
        lam_t=tuple(np.geomspace(1e-3, 3.0, 7)),
        temperatures=(0.5, 2.0, 8.0),
        lam_s_grid=tuple(np.geomspace(1e-3, 3.0, 7)),
        student_gradient=False,
        opt_temperatures=(0.5, 2.0, 8.0),
        dd_alphas=(0.2, 0.35, 0.7, 1.0, 2.0, 4.0, 8.0),
        dd_refine=(1.0,),
        map_alphas=(2.0, 4.0),
        map_gammas=(0.25, 0.5),
        map_lam_t=(0.03, 0.3),
        map_temperatures=(1.0, 4.0),
        sim_n_features=400,
        sim_seeds=3,
        sim_lam_t=(0.003, 0.3, 3.0),
        sim_dd_points=((2.0, 0.0, 1e-4), (2.0, 1.0, 1e-4), (2.0, 0.0, 0.1)),
        sd_depth=3,
        sd_label_noises=(0.0, 0.2),
        sd_sim_n_features=300,
        sd_sim_seeds=2,
        sd_opt_steps=6,
        sd_gain_alphas=(1.0, 4.0),
        sd_gain_noises=(0.0, 0.3),
    )


def tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    """Report ``done`` of ``total`` steps of ``stage`` (``done`` capped at ``total``)."""
    if progress is not None:
        progress(stage, min(done, total), total)
