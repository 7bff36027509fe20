"""Model parameters as equinox modules (frozen pytrees with static fields).

Numbers are pytree leaves (differentiable, vmappable); the teacher's loss (a ``kdjax.Loss``
object), the data mode and the solver settings are static fields.  Constructors validate concrete
(non-traced) values eagerly and raise a one-line ``ValueError`` naming the parameter and its
allowed range (docs/model.md conventions).
Numbers must be real (Python ``int``/``float``, numpy or JAX scalars or arrays of integer or
floating dtype; not ``bool``); only JAX tracers skip the checks.  The ``check_*`` helpers are
shared with the other public entry points.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._inputs import FreshInputs, SameInputs
from ._losses import Loss, as_loss

STUDENT_DATA = ("same", "fresh")


def describe(value) -> str:
    """A one-line description of ``value`` for error messages."""
    if getattr(value, "ndim", 0):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def real_value(name: str, value):
    """``value`` as a float numpy array, or ``None`` for a JAX tracer (checked where concrete).

    Accepts Python ``int``/``float`` and numpy or JAX scalars and arrays of integer or floating
    dtype; anything else (strings, ``None``, complex numbers, booleans, lists) raises
    ``ValueError`` naming the parameter.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        real = jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)
    else:
        real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not real:
        raise ValueError(f"{name} must be a real number, got {describe(value)}")
    return np.asarray(value, dtype=float)


def check_range(name: str, value, lo=None, hi=None, *, lo_open=True, hi_open=True):
    """Raise ``ValueError`` unless ``value`` is real and every concrete entry lies in the interval."""
    arr = real_value(name, value)
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


def check_integer(name: str, value, lo: int) -> int:
    """``value`` as a Python ``int`` (numpy integers accepted, booleans not); ``ValueError`` unless ``>= lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {describe(value)}")
    return int(value)


def check_instance(name: str, value, cls) -> None:
    """Raise ``ValueError`` unless ``value`` is a ``cls`` (e.g. ``mixture must be a Mixture``)."""
    if not isinstance(value, cls):
        raise ValueError(f"{name} must be a {cls.__name__}, got {describe(value)}")


try:  # the trace of the current call: at the top level (no transformation) its arguments are concrete
    from jax._src.core import EvalTrace, trace_ctx

    def at_top_level() -> bool:
        """Whether no JAX transformation is tracing the current call (then no argument is a tracer)."""
        return type(trace_ctx.trace) is EvalTrace
except ImportError:  # pragma: no cover - then the arguments are inspected

    def at_top_level() -> bool:
        return False


def is_concrete(*trees) -> bool:
    """Whether every leaf of ``trees`` is a concrete value (not a JAX tracer)."""
    return at_top_level() or not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def primal(tree):
    """``tree`` with its tracers' derivatives dropped (``stop_gradient``): under ``jax.grad`` or
    ``jax.jvp`` outside ``jit`` the values are then concrete, so the eager checks and the regime
    shortcut apply there too; other leaves are returned as they are."""
    if is_concrete(tree):
        return tree
    return jax.tree.map(lambda a: jax.lax.stop_gradient(a) if isinstance(a, jax.core.Tracer) else a, tree)


def check_arguments(**named) -> None:
    """Eager checks of the public solvers' arguments: the right parameter class, scalar values.

    ``named`` maps an argument name to ``(value, class)``.  (Arrays of settings belong to
    ``kdjax.sweep`` or a user's ``jax.vmap``.)
    """
    for name, (value, cls) in named.items():
        check_instance(name, value, cls)
        if any(type(leaf) is not float and np.ndim(leaf) for leaf in jax.tree_util.tree_leaves(value)):
            raise ValueError(f"{name} must hold scalar values, got an array")
        stripped = primal(value)
        if stripped is not value and is_concrete(stripped):
            stripped.check()  # built from tracers (under jax.grad): its constructor could not check the ranges


def check_choice(name: str, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {describe(value)}")


class Params(eqx.Module):
    """Base of every parameter object: a frozen pytree, validated by its constructor.

    JAX and equinox rebuild pytrees (with tracers, booleans or ``None`` as leaves) without
    calling the constructor, so validation sees user input only.
    """

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise a one-line ``ValueError`` naming the first field out of its range."""

    def replace(self, **changes):
        """A copy with the named fields replaced (validated like a new object)."""
        return dataclasses.replace(self, **changes)


class Mixture(Params):
    """Binary Gaussian mixture ``x = y v / sqrt(N) + sqrt(delta) z`` with ``n = alpha N`` samples.

    alpha: samples per input dimension (> 0); delta: noise variance (> 0);
    rho: ``P(y = +1)`` in (0, 1); label_noise: ``eta`` in [0, 1/2), the probability that a
    training label is flipped (docs/model.md, "Label noise"; test errors use the clean label).
    ``noisy`` (static, derived): whether ``label_noise`` was given as anything but an exact 0;
    clean mixtures skip the flipped-label terms of every average.
    """

    alpha: float
    delta: float
    rho: float = 0.5
    label_noise: float = 0.0
    noisy: bool = eqx.field(static=True, init=False, repr=False)

    def check(self):
        check_range("alpha", self.alpha, 0.0)
        check_range("delta", self.delta, 0.0)
        check_range("rho", self.rho, 0.0, 1.0)
        check_range("label_noise", self.label_noise, 0.0, 0.5, lo_open=False)

    def __post_init__(self):
        self.check()
        exact_zero = isinstance(self.label_noise, (int, float)) and self.label_noise == 0
        object.__setattr__(self, "noisy", not exact_zero)


class Teacher(Params):
    """Ridge-regularised ERM on ground-truth labels: ``sum_i loss(y_i, h_i) + lam/2 |w|^2``.

    loss: a ``kdjax.Loss`` (class or instance) or one of the names ``logistic, square, hinge``;
    stored as the loss object.  lam: the ridge ``lam_t >= 0``.
    """

    loss: Loss = eqx.field(default="logistic", static=True, converter=as_loss)
    lam: float = 0.0

    def check(self):
        check_range("lam_t", self.lam, 0.0, lo_open=False)


class Student(Params):
    """Knowledge-distilled student (docs/model.md).

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
    data: str = eqx.field(default="same", static=True)
    alpha: float | None = None

    def check(self):
        check_choice("student data", self.data, STUDENT_DATA)
        check_range("gamma", self.gamma, 0.0, 1.0, hi_open=False)
        check_range("temperature", self.temperature, 0.0)
        check_range("hard_weight", self.hard_weight, 0.0, 1.0, lo_open=False, hi_open=False)
        check_range("lam_s", self.lam, 0.0, lo_open=False)
        if self.data == "fresh":
            if self.alpha is None:
                raise ValueError("alpha_s (Student.alpha) is required when data='fresh'")
            check_range("alpha_s", self.alpha, 0.0)
        elif self.alpha is not None and not isinstance(self.alpha, jax.core.Tracer):
            raise ValueError("alpha_s (Student.alpha) applies only to data='fresh'")

    @property
    def inputs(self):
        """The input mode as an object: ``SameInputs()`` or ``FreshInputs(alpha)`` (kdjax._inputs)."""
        return SameInputs() if self.data == "same" else FreshInputs(self.alpha)


class SolverConfig(Params):
    """Numerical settings of every theory solve (static).

    degree: quadrature nodes of 1-D Gaussian averages; degree_2d: nodes per dimension of the
    2-D (teacher, student) averages; newton_steps: iterations of the
    safeguarded Newton solve of each proximal map; tol: bound on the undamped residual
    ``max |F(x) - x|`` of the outer fixed point; max_steps: outer iteration limit;
    damping: weight ``eta`` of the new iterate in ``x <- (1 - eta) x + eta F(x)``;
    chain_nodes: ``(n_0, n)``, the nested rule of a same-input generation after other students
    (``n_0`` channel nodes in the teacher's field, ``n`` Gauss-Hermite nodes in each later one,
    docs/chains.md); ``()`` for the default rule (48, then 8 at depth 2, 6 at depth 3, 4 deeper);
    fast_compile: compile kdjax's programs with XLA's quick CPU code generation (about half the
    compile time, each solve about 1.5x slower once compiled; kdjax._compile): ``True`` (the
    default) for a quick first answer, ``False`` for long sweeps and optimisations.
    """

    degree: int = eqx.field(default=128, static=True)
    degree_2d: int = eqx.field(default=48, static=True)
    newton_steps: int = eqx.field(default=100, static=True)
    tol: float = eqx.field(default=1e-10, static=True)
    max_steps: int = eqx.field(default=2000, static=True)
    damping: float = eqx.field(default=0.5, static=True)
    chain_nodes: tuple = eqx.field(default=(), static=True)
    fast_compile: bool = eqx.field(default=True, static=True)

    def __hash__(self):
        # (jit hashes a static config on every call: read the fields at once, not one by one)
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def __post_init__(self):
        # Static metadata: stored as Python scalars so that the config stays hashable.
        for name in ("degree", "degree_2d", "newton_steps", "max_steps"):
            object.__setattr__(self, name, check_integer(name, getattr(self, name), 2))
        for name, hi_open in (("tol", True), ("damping", False)):
            value = getattr(self, name)
            arr = real_value(name, value)
            if arr is None or arr.ndim:
                raise ValueError(f"{name} must be a real number (static), got {describe(value)}")
            check_range(name, arr, 0.0, 1.0, hi_open=hi_open)
            object.__setattr__(self, name, float(arr))
        if not isinstance(self.fast_compile, (bool, np.bool_)):
            raise ValueError(f"fast_compile must be True or False, got {describe(self.fast_compile)}")
        object.__setattr__(self, "fast_compile", bool(self.fast_compile))
        nodes = tuple(self.chain_nodes)
        if nodes and len(nodes) != 2:
            raise ValueError(f"chain_nodes must be () or a pair (n_0, n), got {self.chain_nodes!r}")
        object.__setattr__(self, "chain_nodes", tuple(check_integer("chain_nodes", n, 2) for n in nodes))


__all__ = ["Mixture", "Teacher", "Student", "SolverConfig", "STUDENT_DATA"]
