"""Model parameters as frozen dataclasses registered as JAX pytrees.

Numbers are pytree leaves (differentiable, vmappable); names of losses and data modes are
static metadata.  Constructors validate concrete (non-traced) values eagerly and raise a
one-line ``ValueError`` naming the parameter and its allowed range (MODEL.md conventions).
"""

from __future__ import annotations

import dataclasses
import jax
import numpy as np

LOSSES = ("logistic", "square", "hinge")
STUDENT_DATA = ("same", "fresh")


def _concrete(value):
    """Return ``value`` as a numpy array when it is concrete, else ``None`` (tracer)."""
    if isinstance(value, jax.core.Tracer) or value is None:
        return None
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None


def check_range(name: str, value, lo=None, hi=None, *, lo_open=True, hi_open=True):
    """Raise ``ValueError`` unless every concrete entry of ``value`` lies in the interval."""
    arr = _concrete(value)
    if arr is None:
        return
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    span = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
    bad = ~np.isfinite(arr)
    if lo is not None:
        bad |= (arr <= lo) if lo_open else (arr < lo)
    if hi is not None:
        bad |= (arr >= hi) if hi_open else (arr > hi)
    if np.any(bad):
        shown = arr if arr.ndim == 0 else arr[bad].ravel()[0]
        raise ValueError(f"{name} must be in {span}, got {float(shown):g}")


def check_choice(name: str, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _pytree(cls, meta=()):
    """Register a frozen dataclass as a pytree whose unflattening skips validation.

    JAX and equinox rebuild pytrees with tracers, booleans or ``None`` as leaves; those are
    not user input, so reconstruction bypasses ``__init__`` (and ``__post_init__``).
    """
    fields = [f.name for f in dataclasses.fields(cls)]
    data = [f for f in fields if f not in meta]

    def flatten(obj):
        children = [(jax.tree_util.GetAttrKey(k), getattr(obj, k)) for k in data]
        return children, tuple(getattr(obj, k) for k in meta)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for k, v in zip(meta, aux):
            object.__setattr__(obj, k, v)
        for k, v in zip(data, children):
            object.__setattr__(obj, k, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten, unflatten)
    return cls


@dataclasses.dataclass(frozen=True)
class Mixture:
    """Binary Gaussian mixture ``x = y v / sqrt(N) + sqrt(delta) z`` with ``n = alpha N`` samples.

    alpha: samples per input dimension (> 0); delta: noise variance (> 0);
    rho: ``P(y = +1)`` in (0, 1).
    """

    alpha: float
    delta: float
    rho: float = 0.5

    def __post_init__(self):
        check_range("alpha", self.alpha, 0.0)
        check_range("delta", self.delta, 0.0)
        check_range("rho", self.rho, 0.0, 1.0)

    replace = dataclasses.replace


@dataclasses.dataclass(frozen=True)
class Teacher:
    """Ridge-regularised ERM on ground-truth labels: ``sum_i loss(y_i, h_i) + lam/2 |w|^2``."""

    loss: str = "logistic"
    lam: float = 0.0

    def __post_init__(self):
        check_choice("teacher loss", self.loss, LOSSES)
        check_range("lam_t", self.lam, 0.0, lo_open=False)

    replace = dataclasses.replace


@dataclasses.dataclass(frozen=True)
class Student:
    """Knowledge-distilled student (MODEL.md).

    gamma: fraction of the input coordinates the student sees, in (0, 1];
    temperature: ``T > 0`` of the soft labels ``sigmoid(h_t / T)``;
    hard_weight: ``a`` in [0, 1], weight of the hard-label logistic loss;
    lam: student ridge ``lam_s >= 0``;
    data: ``"same"`` (the teacher's training inputs) or ``"fresh"`` (new inputs);
    alpha: ``alpha_s = n_s / N`` of the fresh set (required for, and only for, ``data="fresh"``).
    """

    gamma: float = 1.0
    temperature: float = 1.0
    hard_weight: float = 0.0
    lam: float = 0.0
    data: str = "same"
    alpha: float | None = None

    def __post_init__(self):
        check_choice("student data", self.data, STUDENT_DATA)
        check_range("gamma", self.gamma, 0.0, 1.0, hi_open=False)
        check_range("temperature", self.temperature, 0.0)
        check_range("hard_weight", self.hard_weight, 0.0, 1.0, lo_open=False, hi_open=False)
        check_range("lam_s", self.lam, 0.0, lo_open=False)
        if self.data == "fresh":
            if self.alpha is None:
                raise ValueError("alpha_s (Student.alpha) is required when data='fresh'")
            check_range("alpha_s", self.alpha, 0.0)
        elif self.alpha is not None and _concrete(self.alpha) is not None:
            raise ValueError("alpha_s (Student.alpha) applies only to data='fresh'")

    replace = dataclasses.replace


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Numerical settings of every theory solve (static).

    degree: quadrature nodes of 1-D Gaussian averages; degree_2d: nodes per dimension of the
    2-D (teacher, student) averages; newton_steps: iterations of the
    safeguarded Newton solve of each proximal map; tol: bound on the undamped residual
    ``max |F(x) - x|`` of the outer fixed point; max_steps: outer iteration limit;
    damping: weight ``eta`` of the new iterate in ``x <- (1 - eta) x + eta F(x)``.
    """

    degree: int = 128
    degree_2d: int = 48
    newton_steps: int = 100
    tol: float = 1e-10
    max_steps: int = 2000
    damping: float = 0.5

    def __post_init__(self):
        for name in ("degree", "degree_2d", "newton_steps", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        check_range("tol", self.tol, 0.0, 1.0)
        check_range("damping", self.damping, 0.0, 1.0, hi_open=False)

    replace = dataclasses.replace


Mixture = _pytree(Mixture)
Teacher = _pytree(Teacher, meta=("loss",))
Student = _pytree(Student, meta=("data",))
SolverConfig = _pytree(SolverConfig, meta=tuple(f.name for f in dataclasses.fields(SolverConfig)))

__all__ = ["Mixture", "Teacher", "Student", "SolverConfig", "LOSSES", "STUDENT_DATA"]
