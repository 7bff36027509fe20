"""kdjax: the exact high-dimensional theory of knowledge distillation, in JAX.

Model and conventions: MODEL.md (see docs/theory.md for the derivations).  This module is the
public face; the implementation lives in the private ``kdjax._*`` modules.
"""

from . import simulate
from ._bayes import bayes_optimal_error, bayes_optimal_overlaps, separability_threshold
from ._cache import enable_compilation_cache
from ._observables import agreement, gen_error
from ._optimize import KDOptimum, best_teacher, optimize_kd
from ._params import Mixture, SolverConfig, Student, Teacher
from ._simulate import StudentSimulation, TeacherSimulation, simulate_student, simulate_teacher
from ._student import StudentResult, solve_student
from ._sweep import sweep
from ._teacher import TeacherResult, solve_teacher

__all__ = [
    "Mixture", "Teacher", "Student", "SolverConfig",
    "solve_teacher", "solve_student", "TeacherResult", "StudentResult",
    "sweep", "optimize_kd", "best_teacher", "KDOptimum",
    "gen_error", "agreement", "bayes_optimal_error", "bayes_optimal_overlaps", "separability_threshold",
    "enable_compilation_cache",
    "simulate", "simulate_teacher", "simulate_student", "TeacherSimulation", "StudentSimulation",
]
__version__ = "0.1.0"
