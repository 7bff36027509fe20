"""What every generation of a distillation chain is, and what a solved one gives (docs/architecture.md).

A *generation* is one learner of the chain: generation 0 is the teacher (ERM on the noisy labels,
``ERM``), generation ``k >= 1`` a student distilled from generation ``k - 1`` (``KD``).  It gives,
from the solved generations before it (its ``history``):

* its order-parameter state, a ``start`` and its saddle-point ``map`` (the fixed point solved by
  ``kdjax._solve``), with the admissible states (``valid``);
* its test observables at a solved state (``observables``: cheap, from the overlaps) and its
  training observables (``training``: Gaussian averages, compiled apart and computed when asked);
* its regime (``finite``: traceable; ``check``: eager, raising the named ``ValueError``);
* what a later generation needs of it: a ``Summary`` (``m, q, b, V`` and its support ``gamma``),
  for the generations that train on its own training inputs its training output (``output`` /
  ``output_channel``), and for a same-input generation after other students its chain ``record``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax


class Summary(eqx.Module):
    """A solved generation as its successors see it: ``m = w . v / N``, ``q = |w|^2 / N``, the
    bias ``b``, the response ``V``, the fraction ``gamma`` of the coordinates it sees and its
    overlap ``r_teacher = w_0,S . w / N`` with the teacher (``q`` for the teacher itself), and the
    teacher's ``m_teacher``."""

    m: jax.Array
    q: jax.Array
    b: jax.Array
    V: jax.Array
    gamma: jax.Array
    r_teacher: jax.Array
    m_teacher: jax.Array


class Solved(eqx.Module):
    """An earlier generation of a chain: the generation, its solved state, its summary and, where a
    later same-input generation needs it, its chain ``record`` (``kdjax._generations.records``)."""

    generation: Any
    state: Any
    summary: Summary
    record: Any = None


class Generation(eqx.Module):
    """Interface of a generation (module docstring); ``ERM``, ``KD`` and ``SameKD`` implement it.

    ``prepare`` gives what the map reads of the history, computed once per solve (the ``context``
    passed to ``start``, ``map``, ``summary``, ``observables`` and ``training``); by default the
    history itself.  ``reads_records``: the history must carry every earlier generation's ``record``.
    """

    reads_records: ClassVar[bool] = False
    unread: ClassVar[tuple] = ()  # state fields the map computes but does not read (by-products)

    @classmethod
    def of(cls, params):
        """The generation of a (validated) parameter object, built as a pytree is rebuilt, without
        equinox's constructor checks (they are for user input; this is every solve's path)."""
        generation = object.__new__(cls)
        object.__setattr__(generation, "params", params)
        return generation

    def prepare(self, mixture, history, config):
        return history

    def unread_leaves(self, x):
        """``x``'s structure with ``True`` at the leaves of the ``unread`` fields (the driver's ``unread``)."""
        flags = jax.tree.map(lambda _: False, x)
        return eqx.tree_at(lambda s: [getattr(s, name) for name in self.unread], flags,
                           [jax.tree.map(lambda _: True, getattr(x, name)) for name in self.unread])

    def record(self, x, mixture, history, records, config):
        """The generation's chain ``Record`` from its solved state, given what it reads (``needs``) and
        the records of all earlier generations: algebra, no Gaussian average (docs/chains.md)."""
        raise NotImplementedError

    def start(self, mixture, history):
        raise NotImplementedError

    def map(self, x, mixture, history, config):
        raise NotImplementedError

    def valid(self, x):
        return x.V > 0

    def summary(self, x, history) -> Summary:
        raise NotImplementedError

    def observables(self, x, mixture, history) -> dict:
        """``gen_error`` and ``r`` (the overlap with the previous generation, ``None`` for the teacher);
        ``m, q, b, V`` are the ``summary``'s."""
        raise NotImplementedError

    def training(self, x, mixture, history, config):
        raise NotImplementedError

    def finite(self, mixture):
        raise NotImplementedError

    def check(self, mixture, where: str = "") -> None:
        raise NotImplementedError

    def needs(self, history: tuple) -> tuple:
        """The part of the history this generation's equations read (all of it by default)."""
        return history
