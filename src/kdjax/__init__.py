"""kdjax: the exact high-dimensional theory of knowledge distillation, in JAX.

Model and conventions: docs/model.md (see docs/theory.md for the derivations).  This module is the
public face; the implementation lives in the private ``kdjax._*`` modules.
"""

from . import simulate
from ._bayes import BayesOverlaps, bayes_optimal_error, bayes_optimal_overlaps
from ._cache import enable_compilation_cache
from ._generations import (
    ChainResult,
    FreshInputs,
    GenerationResult,
    SameInputs,
    StudentState,
    TeacherState,
    solve_chain,
    solve_student,
    solve_teacher,
)
from ._losses import KD, Hinge, KDLoss, Logistic, Loss, Moments, Square
from ._observables import agreement, gen_error
from ._optimize import BestTeacher, KDOptimum, best_teacher, optimize_kd
from ._params import Mixture, SolverConfig, Student, Teacher
from ._regimes import has_finite_minimiser, separability_threshold
from ._simulate import (
    ChainSimulation,
    GenerationSimulation,
    StudentSimulation,
    TeacherSimulation,
    simulate_chain,
    simulate_student,
    simulate_teacher,
)
from ._solve import RESULTS, SolveError
from ._sweep import sweep

TeacherResult = StudentResult = GenerationResult  # one result type for every generation

__all__ = [
    "Mixture", "Teacher", "Student", "SolverConfig",
    "Loss", "Logistic", "Square", "Hinge", "KDLoss", "KD", "Moments",
    "solve_teacher", "solve_student", "solve_chain", "ChainResult", "GenerationResult", "TeacherResult",
    "StudentResult", "TeacherState", "StudentState", "SameInputs", "FreshInputs",
    "RESULTS", "SolveError", "has_finite_minimiser", "separability_threshold",
    "sweep", "optimize_kd", "best_teacher", "KDOptimum", "BestTeacher",
    "gen_error", "agreement", "bayes_optimal_error", "bayes_optimal_overlaps", "BayesOverlaps",
    "enable_compilation_cache",
    "simulate", "simulate_teacher", "simulate_student", "TeacherSimulation", "StudentSimulation",
    "simulate_chain", "ChainSimulation", "GenerationSimulation",
]
__version__ = "0.1.0"
