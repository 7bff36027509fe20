"""Finite-N experiments of exactly the docs/model.md objectives (the ground truth of the theory)."""

from ._simulate import (
    ChainSimulation,
    GenerationSimulation,
    StudentSimulation,
    TeacherSimulation,
    simulate_chain,
    simulate_student,
    simulate_teacher,
)

__all__ = [
    "simulate_teacher", "simulate_student", "simulate_chain",
    "TeacherSimulation", "StudentSimulation", "ChainSimulation", "GenerationSimulation",
]
