"""Grids of settings in one compiled call (``vmap`` batches), sharded over devices, in chunks.

A setting is named by the flat parameter names used everywhere in kdjax (``PARAMETERS``); a
grid is their Cartesian product.  Every point carries its own ``converged`` and
``finite_minimiser`` flags: nothing is silently wrong.
"""

from __future__ import annotations

import itertools
from functools import partial
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._params import Mixture, SolverConfig, Student, Teacher, check_instance, check_integer, real_value
from ._student import solve_student
from ._teacher import solve_teacher

#: flat name -> (which object, which field)
PARAMETERS = {
    "alpha": ("mixture", "alpha"),
    "delta": ("mixture", "delta"),
    "rho": ("mixture", "rho"),
    "label_noise": ("mixture", "label_noise"),
    "lam_t": ("teacher", "lam"),
    "gamma": ("student", "gamma"),
    "temperature": ("student", "temperature"),
    "hard_weight": ("student", "hard_weight"),
    "lam_s": ("student", "lam"),
    "alpha_s": ("student", "alpha"),
}


def with_values(mixture: Mixture, teacher: Teacher, student: Student | None, values: Mapping):
    """Copies of the three parameter objects with the named fields replaced (traced or not).

    Concrete values are validated by the constructors, arrays element by element.
    """
    objs = {"mixture": mixture, "teacher": teacher, "student": student}
    for name, value in values.items():
        if name not in PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
        which, field = PARAMETERS[name]
        if objs[which] is None:
            raise ValueError(f"parameter {name!r} needs a student")
        objs[which] = objs[which].replace(**{field: value})
    return objs["mixture"], objs["teacher"], objs["student"]


def solve(mixture, teacher, student=None, config: SolverConfig = SolverConfig()):
    """The teacher, or the student with its teacher, at one setting (traceable, ``throw=False``)."""
    if student is None:
        return solve_teacher(mixture, teacher, config, throw=False)
    return solve_student(mixture, teacher, student, config, throw=False)


def grid_points(grid: Mapping[str, object]) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Flatten the Cartesian product of ``grid`` into equal-length 1-D arrays (and its shape)."""
    axes = {}
    for name, values in grid.items():
        if isinstance(values, (list, tuple)):
            for v in values:
                real_value(f"grid field {name!r}", v)
            values = np.asarray(values, dtype=float)
        arr = np.atleast_1d(real_value(f"grid field {name!r}", values))
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"grid field {name!r} must be a non-empty 1-D list of numbers")
        axes[name] = arr
    shape = tuple(a.size for a in axes.values())
    flat = [np.asarray(p) for p in zip(*itertools.product(*axes.values()))] if axes else []
    return dict(zip(axes, flat)), shape


@partial(jax.jit, static_argnames=("config", "batch_size"))
def _solve_points(base, values, *, config, batch_size):
    """``solve`` at every point of ``values`` (name -> ``(devices, points per device)``).

    The leading axis, sharded one row per device, is ``vmap``-ed (so that each device
    solves its own row); along a row the solve is mapped ``batch_size`` points at a time
    under ``vmap``.  Compiled once per (parameter structure, grid names, shapes, config,
    batch size) and reused by every later sweep of that shape.
    """
    point = lambda v: solve(*with_values(*base, v), config)
    return jax.vmap(lambda row: jax.lax.map(point, row, batch_size=batch_size))(values)


def default_batch_size(devices) -> int:
    """Points solved together under ``vmap`` on one device: 1 on CPU, 256 on accelerators.

    A batch's fixed-point loops run until its slowest point converges; on a CPU the lanes
    of a batch share a core, so one point at a time is fastest, while a GPU runs a batch's
    lanes in parallel.
    """
    return 1 if all(d.platform == "cpu" for d in devices) else 256


def sweep(
    mixture: Mixture,
    teacher: Teacher,
    student: Student | None = None,
    grid: Mapping[str, object] | None = None,
    *,
    config: SolverConfig = SolverConfig(),
    chunk_size: int | None = None,
    batch_size: int | None = None,
    devices=None,
    progress: Callable[[int, int], None] | None = None,
):
    """Solve every point of the Cartesian product ``grid`` (name -> values).

    Returns the result pytree (``TeacherResult`` or ``StudentResult``) whose leaves have the
    grid's shape, in the order of ``grid``'s keys.  The points are split into chunks of
    ``chunk_size`` (all of them by default), each chunk sharded evenly over ``devices``
    (default ``jax.devices()``) and evaluated by one compiled call that maps the solve over
    each device's points, ``batch_size`` at a time under ``vmap`` (default
    ``default_batch_size``).  The compiled function is cached across calls.
    """
    grid = dict(grid or {})
    if not grid:
        raise ValueError("grid must name at least one parameter")
    flat, shape = grid_points(grid)
    with_values(mixture, teacher, student, flat)  # eager validation of every value
    n = int(np.prod(shape))
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    chunk_size = None if chunk_size is None else check_integer("chunk_size", chunk_size, 1)
    batch_size = None if batch_size is None else check_integer("batch_size", batch_size, 1)
    check_instance("config", config, SolverConfig)
    k = len(devices)
    chunk = chunk_size or n
    chunk = max(k, -(-chunk // k) * k)  # a multiple of the device count
    batch = int(batch_size or default_batch_size(devices))
    batch = min(batch, chunk // k)
    mesh = Mesh(np.asarray(devices), ("points",))
    sharding = NamedSharding(mesh, PartitionSpec("points"))
    base = (mixture, teacher, student)

    dtype = jnp.result_type(float)
    pieces = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        values = {}
        for name, arr in flat.items():
            part = np.resize(arr[start:stop], chunk).reshape(k, chunk // k)  # padded by repetition
            values[name] = jax.device_put(jnp.asarray(part, dtype), sharding)
        out = _solve_points(base, values, config=config, batch_size=batch)
        unrow = lambda x, m=stop - start: np.asarray(x).reshape((chunk,) + x.shape[2:])[:m]
        pieces.append(jax.tree_util.tree_map(unrow, out))
        if progress is not None:
            progress(stop, n)
    merged = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *pieces)
    return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), merged)
