"""Generations of a distillation chain (docs/architecture.md): generation 0 is the teacher (``ERM``),
generation ``k >= 1`` a student distilled from ``k - 1`` (``KD``; on the teacher's inputs after other students
``SameKD``, which reads every earlier generation's ``Record``); a solve is a fold over them."""

from .._inputs import FreshInputs, Inputs, SameInputs
from .base import Generation, Solved, Summary
from .erm import ERM, TeacherState
from .kd import KD, StudentState
from .records import Record
from .same import SameKD, SameState
from .solve import ChainResult, GenerationResult, fold, solve_chain, solve_generation, solve_student, solve_teacher

__all__ = ["Generation", "Solved", "Summary", "Record", "ERM", "KD", "SameKD", "TeacherState", "StudentState",
           "SameState", "Inputs", "SameInputs", "FreshInputs", "GenerationResult", "ChainResult", "solve_chain", "fold",
           "solve_generation", "solve_student", "solve_teacher"]
