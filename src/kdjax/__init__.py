"""kdjax: the exact high-dimensional theory of knowledge distillation, in JAX.

Model and conventions: MODEL.md (see docs/theory.md for the derivations).
"""

from .bayes import bayes_optimal_error, bayes_optimal_overlaps, separability_threshold
from .observables import agreement, gen_error
from .optimize import KDOptimum, best_teacher, optimize_kd
from .params import Mixture, SolverConfig, Student, Teacher
from .student import StudentResult, solve_student
from .sweep import sweep  # the function; the module stays importable as ``kdjax.sweep``
from .teacher import TeacherResult, solve_teacher

__all__ = [
    "Mixture", "Teacher", "Student", "SolverConfig",
    "solve_teacher", "solve_student", "TeacherResult", "StudentResult",
    "sweep", "optimize_kd", "best_teacher", "KDOptimum",
    "gen_error", "agreement", "bayes_optimal_error", "bayes_optimal_overlaps", "separability_threshold",
]
__version__ = "0.1.0"
