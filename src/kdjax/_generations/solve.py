"""Solving generations: one compiled program per generation, a chain as a fold (docs/architecture.md).

``solve_generation`` is the compiled unit: a generation's fixed point and its test observables,
given the solved generations it reads (``Solved``), compiled once per structure and called with
the earlier states as inputs, so a student reuses the compiled teacher and each depth of a chain
compiles once.  Every public entry point calls it, also under ``jax.grad``, ``jax.vmap`` or a
user's ``jit`` (a cached compiled call then, not an op-by-op trace).  The regime test runs
eagerly where the ridge is a concrete positive number, and otherwise in a program of its own;
training observables are a third program, run when a result's ``train_error`` / ``train_loss``
is read.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._compile import concrete_points, jit
from .._observables import agreement_unchecked
from .._params import Mixture, SolverConfig, Student, Teacher, check_arguments, check_instance
from .._solve import RESULTS, is_concrete, primal, raise_if_failed, solve_fixed_point
from .base import Generation, Solved, Summary
from .erm import ERM
from .kd import KD
from .same import SameKD


def _from_summary(name: str, doc: str) -> property:
    """A result's field that is its ``summary``'s."""
    return property(lambda self: getattr(self.summary, name), doc=doc)


class GenerationResult(eqx.Module):
    """A solved generation: docs/model.md observables, the solver's diagnostics and the solved ``state``.

    ``r`` and ``agreement`` are taken against the previous generation (``None`` for the teacher).
    ``result`` is a ``kdjax.RESULTS`` code; ``converged`` is ``result == successful`` (which needs
    every earlier generation to have succeeded).  ``agreement``, ``train_error`` and ``train_loss``
    are computed when read, each by a compiled program of its own (``agreement``'s, a function of
    the two generations' overlaps, is shared by every generation).  ``teacher`` is set by
    ``solve_student`` only.
    """

    gen_error: jax.Array
    r: jax.Array | None
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array
    result: RESULTS
    state: eqx.Module
    summary: Summary
    generation: Generation
    mixture: Mixture
    history: tuple
    config: SolverConfig = eqx.field(static=True)
    teacher: GenerationResult | None = None

    @property
    def converged(self):
        return self.result == RESULTS.successful

    # read from the summary (each a program output once: this result's leaves are every call's cost)
    m = _from_summary("m", "``m = w . v / N``, the overlap with the mixture's mean direction.")
    q = _from_summary("q", "``q = |w|^2 / N``.")
    b = _from_summary("b", "The bias.")
    V = _from_summary("V", "The response ``V`` (docs/model.md).")
    r_teacher = _from_summary("r_teacher",
                              "The overlap ``w_0,S . w / N`` with the teacher (``q`` for the teacher itself).")

    @property
    def agreement(self):
        """``P(sign h = sign h_prev)`` on a fresh input, against the previous generation (docs/model.md)."""
        if self.r is None:
            return None
        p = self.history[-1].summary
        return _agreement(p.m, p.q, p.b, self.m, self.q, self.r, self.b, self.mixture.delta, self.mixture.rho)

    @property
    def V_st(self):
        """The cross response of a student on its predecessor's inputs (0 on fresh inputs)."""
        return getattr(self.state, "V_st", None)

    @property
    def solved(self) -> Solved:
        """This generation as its successors see it."""
        return Solved(self.generation, self.state, self.summary)

    def _training(self):
        args = (self.generation, self.state, self.mixture, self.history)
        batch = np.shape(self.gen_error)
        if batch and is_concrete(args):
            flat = jax.tree.map(lambda a: jnp.reshape(a, (-1,) + jnp.shape(a)[len(batch):]), args)
            out = jax.vmap(partial(_training, config=self.config))(*flat)
            return tuple(jnp.reshape(o, batch) for o in out)
        return _training(*args, config=self.config)

    @property
    def train_error(self):
        """Fraction of the training samples misclassified (against their observed labels)."""
        return self._training()[0]

    @property
    def train_loss(self):
        """Training loss per sample, without the penalty."""
        return self._training()[1]


@jit(static_argnames=("config",))
def _training(generation, state, mixture, history, *, config):
    return generation.training(state, mixture, generation.prepare(mixture, history, config), config)


_agreement = jit(agreement_unchecked)


@jit(static_argnames=("config",))
def _record(generation, state, mixture, history, records, *, config):
    return generation.record(state, mixture, history, records, config)


@jit
def _finite(generation, mixture):
    return generation.finite(mixture)


def _map(x, args):
    generation, mixture, history, config = args
    return generation.map(x, mixture, history, config)


@jit(static_argnames=("config",))
def solve_generation(generation, mixture, history, x0, previous, finite, cold=None, *, config) -> GenerationResult:
    """The fixed point of ``generation`` given ``history`` and its test observables; pure JAX
    (``jit``/``vmap``/``grad``, implicit derivatives), no checks.

    ``x0``: the start (``None``: the generation's own ``start``); ``previous``: the result code of
    the generation before (``None`` for the teacher); ``finite``: its regime flag; ``cold``: a
    (traced) flag, where true the generation's own start replaces ``x0``.
    """
    context = generation.prepare(mixture, history, config)
    if x0 is None:
        x0 = generation.start(mixture, context)
    elif cold is not None:
        x0 = jax.tree.map(lambda own, given: jnp.where(cold, own, given), generation.start(mixture, context), x0)
    fp = solve_fixed_point(_map, x0, (generation, mixture, context, config), config, valid=generation.valid,
                           unread=generation.unread_leaves(x0), active=finite)
    obs = generation.observables(fp.x, mixture, context)
    result = RESULTS.where(finite, fp.result, RESULTS.no_finite_minimiser)
    if previous is not None:
        result = RESULTS.where(previous == RESULTS.successful, result, RESULTS.teacher_failed)
    return GenerationResult(**obs, residual=fp.residual, iterations=fp.iterations, finite_minimiser=finite,
                            result=result, state=fp.x, summary=generation.summary(fp.x, context), generation=generation,
                            mixture=mixture, history=history, config=config)


def finite_flag(generation, mixture):
    """Whether the generation has a finite minimiser: ``True`` without computation where its ridge
    is a concrete positive number (also under ``jax.grad``, and under ``jax.vmap`` of concrete values
    where every point's is); otherwise the regime test, compiled apart (it has no derivative)."""
    lam = generation.params.lam
    if type(lam) is not float:  # (a Python float, every plain call's, needs neither)
        lam = concrete_points(primal(lam))
    if lam is not None and np.all(np.asarray(lam) > 0):
        return True
    return _finite(primal(generation), primal(mixture))


def _call(module, name: str, *args):
    """``module.name(*args)`` through the class: on the per-call (eager) path, where reading a method
    from an equinox module instance builds a bound-method module each time (about 25 us)."""
    return getattr(type(module), name)(module, *args)


def _start(x0):
    return x0.state if isinstance(x0, GenerationResult) else x0


def fold(mixture, generations, config: SolverConfig, x0s=None, regimes=None, cold=None):
    """Solve ``generations`` in order (a fold): each from the solved ones before it.  Returns their
    ``GenerationResult``s (a failure marks every later generation ``teacher_failed``).

    ``x0s``: a start per generation (``None``: its own ``start``); ``regimes``: per generation,
    whether its regime test may be needed (``False``: its ridge is known to be positive);
    ``cold``: a traced flag, where true every generation starts from its own ``start`` (the first
    point of a sweep's continuation, whose ``x0s`` are placeholders).
    """
    x0s = x0s if x0s is not None else (None,) * len(generations)
    regimes = regimes if regimes is not None else (True,) * len(generations)
    solved, results, previous = (), [], None
    for k, (generation, x0, regime) in enumerate(zip(generations, x0s, regimes)):
        if generation.reads_records:
            solved = with_records(solved, mixture, config)
        history = _call(generation, "needs", solved) if solved else ()
        finite = finite_flag(generation, mixture) if regime else True
        res = solve_generation(generation, mixture, history, _start(x0), previous, finite, cold, config=config)
        results.append(res)
        if k + 1 < len(generations):
            solved, previous = solved + (res.solved,), res.result
    return results


def with_records(solved: tuple, mixture, config) -> tuple:
    """``solved`` with every generation's chain ``record`` (each computed once, by its own program)."""
    out = ()
    for s in solved:
        if s.record is None:
            records = tuple(o.record for o in out)
            needs = _call(s.generation, "needs", out)
            record = _record(s.generation, s.state, mixture, needs, records, config=config)
            s = eqx.tree_at(lambda o: o.record, s, record, is_leaf=lambda x: x is None)
        out = out + (s,)
    return out


def check_chain(mixture, generations, eager_regimes: bool = True) -> tuple:
    """Eager checks of a chain's structure and (``eager_regimes``) regimes, naming the generation
    (``ValueError``).  Returns, per generation, whether its regime still needs a test (``fold``'s
    ``regimes``): ``False`` where the eager check passed."""
    previous, mixture, generations, regimes = None, primal(mixture), primal(generations), []
    for k, generation in enumerate(generations):
        where = "teacher" if k == 0 else f"generation {k}"
        if k and isinstance(generation, KD):
            prev_gamma = 1.0 if k == 1 else previous.params.gamma
            if is_concrete(generation.params.gamma, prev_gamma):
                gamma, prev_gamma = float(generation.params.gamma), float(prev_gamma)
                if gamma > prev_gamma:
                    raise ValueError(f"gamma of {where} ({gamma:g}) must not exceed that of the previous "
                                     f"generation ({prev_gamma:g})")
        checked = eager_regimes and is_concrete(generation, mixture)
        if checked:
            _call(generation, "check", mixture, where if k else "")
        regimes.append(not checked)
        previous = generation
    return tuple(regimes)


def generations_of(teacher: Teacher, students) -> tuple:
    """Generation 0 (ERM), then a ``KD`` generation per student: one with its predecessor's equations
    (fresh inputs, or the first student) or, on the same inputs after another student, ``SameKD``."""
    return (ERM.of(teacher),) + tuple(
        (SameKD if k > 1 and s.data == "same" else KD).of(s) for k, s in enumerate(students, start=1))


def _raise_if_any_failed(results, names):
    for res, name in zip(results, names):
        if is_concrete(res.result._value):
            if res.result != RESULTS.successful and res.result != RESULTS.teacher_failed:
                raise_if_failed(res, name)
        else:
            raise_if_failed(res, name)


def solve_teacher(mixture: Mixture, teacher: Teacher, config: SolverConfig = SolverConfig(), *,
                  throw: bool = True, x0=None) -> GenerationResult:
    """Exact asymptotic teacher (docs/theory.md, Sec. 2): a ``GenerationResult``.

    ``throw=True``: a failed solve raises (``ValueError`` naming the regime, with its numbers,
    when the objective has no finite minimiser; ``kdjax.SolveError`` when the fixed point does not
    converge; under ``jit`` an equinox runtime error with the same reason).  ``throw=False``:
    never raises on failure; ``result`` says what happened (use it under ``vmap``).
    ``x0``: a start (a previous result or its ``state``), e.g. a solved neighbour.  Pure in every
    case: ``jit``, ``vmap`` and ``grad`` compose, each through a cached compiled program.
    """
    check_instance("config", config, SolverConfig)
    if is_concrete(primal((mixture, teacher))):
        check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher))
    generations = generations_of(teacher, ())
    regimes = check_chain(mixture, generations) if throw else None
    (res,) = fold(mixture, generations, config, (x0,), regimes)
    return raise_if_failed(res, "teacher") if throw else res


def solve_student(mixture: Mixture, teacher: Teacher, student: Student, config: SolverConfig = SolverConfig(), *,
                  throw: bool = True, x0=None) -> GenerationResult:
    """Exact asymptotic KD student (docs/theory.md, Sec. 3): the one-generation chain, with its
    teacher in ``.teacher``.

    Gradients flow through both fixed points by implicit differentiation.  ``throw`` as in
    ``solve_teacher`` (the teacher's failure is raised first); ``x0``: a previous student result
    (both fixed points start from it) or a student state.
    """
    check_instance("config", config, SolverConfig)
    if is_concrete(primal((mixture, teacher, student))):
        check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher), student=(student, Student))
    generations = generations_of(teacher, (student,))
    regimes = check_chain(mixture, generations) if throw else None
    x0s = (x0.teacher, x0) if isinstance(x0, GenerationResult) and x0.teacher is not None else (None, x0)
    t, s = fold(mixture, generations, config, x0s, regimes)
    if throw:
        _raise_if_any_failed((t, s), ("teacher", "student"))
    return dataclasses.replace(s, teacher=t)  # (a fifth of eqx.tree_at's time: this is every call's path)


class ChainResult(eqx.Module):
    """A solved distillation chain: the ``teacher`` and one ``GenerationResult`` per student
    (``generations``, in order; ``r`` and ``agreement`` against the previous generation,
    ``r_teacher`` against the teacher).  ``result`` is the code of the first generation that
    failed (``successful`` if none) and ``failed`` its index (0 the teacher, ``k`` generation
    ``k``; -1 if none)."""

    teacher: GenerationResult
    generations: tuple
    result: RESULTS
    failed: jax.Array

    @property
    def converged(self):
        return self.result == RESULTS.successful

    @property
    def r_teacher(self):
        """Each generation's overlap with the teacher, as a tuple."""
        return tuple(g.r_teacher for g in self.generations)


def chain_result(results) -> ChainResult:
    """The ``ChainResult`` of a fold's results (teacher first): the first failure names the chain's code."""
    result, failed = _first_failure(tuple(r.result for r in results))
    return ChainResult(teacher=results[0], generations=tuple(results[1:]), result=result, failed=failed)


@jit
def _first_failure(codes):
    """The first code that is not ``successful`` (or ``successful``) and its index (-1 if none)."""
    result, failed = RESULTS.successful, jnp.asarray(-1)
    for k in range(len(codes) - 1, -1, -1):  # the first failure wins
        bad = codes[k] != RESULTS.successful
        result = RESULTS.where(bad, codes[k], result)
        failed = jnp.where(bad, k, failed)
    return result, failed


def solve_chain(mixture: Mixture, teacher: Teacher, students, config: SolverConfig = SolverConfig(), *,
                throw: bool = True, x0=None) -> ChainResult:
    """Exact asymptotic distillation chain (docs/model.md, "Distillation chains"): the teacher, then each
    ``kdjax.Student`` of ``students`` distilled from the one before (its own ``gamma``, no larger
    than its predecessor's, temperature, hard weight, ridge and inputs).

    Same-input, fresh-input and mixed chains of any depth (docs/chains.md): a same-input generation
    after other students reads the joint cavity of all of them (``SameKD``, nested rule set by
    ``SolverConfig.chain_nodes``).  A fold over generations: each generation's program is compiled
    once per structure (a chain of fresh-input generations compiles each kind once, whatever its
    depth; a same-input generation once per depth) and gradients flow through every fixed point.
    ``throw`` as in ``solve_teacher``; a failure names the first generation that failed.  ``x0``: a
    previous ``ChainResult`` of the same structure (or of a prefix of it) to start from.
    """
    check_instance("config", config, SolverConfig)
    students = tuple(students) if not isinstance(students, Student) else (students,)
    if not students:
        raise ValueError("students must name at least one kdjax.Student (a chain of depth >= 1)")
    for k, s in enumerate(students, start=1):
        check_instance(f"generation {k}", s, Student)
    if is_concrete(primal((mixture, teacher, students))):
        check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher),
                        **{f"generation {k}": (s, Student) for k, s in enumerate(students, start=1)})
    generations = generations_of(teacher, students)
    regimes = check_chain(mixture, generations, eager_regimes=throw)
    x0s = None
    if x0 is not None:
        known = (x0.teacher,) + tuple(x0.generations)
        x0s = known[:len(generations)] + (None,) * max(0, len(generations) - len(known))
    results = fold(mixture, generations, config, x0s, regimes)
    if throw:
        _raise_if_any_failed(results, ["teacher"] + [f"generation {k}" for k in range(1, len(results))])
    return chain_result(results)
