"""Finite-N experiments of exactly the MODEL.md objectives (the ground truth of the theory)."""

from ._simulate import StudentSimulation, TeacherSimulation, simulate_student, simulate_teacher

__all__ = ["simulate_teacher", "simulate_student", "TeacherSimulation", "StudentSimulation"]
