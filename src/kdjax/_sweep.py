"""Grids of settings in one compiled call (``vmap`` batches), sharded over devices, in chunks.

A setting is named by the flat parameter names used everywhere in kdjax (``PARAMETERS``); a
grid is their Cartesian product.  Every point carries its own ``converged`` and
``finite_minimiser`` flags: nothing is silently wrong.

With ``out=`` the table (one CSV row per point: its flat index, its parameter values and every
leaf of its result) is appended and synced to disk after each chunk, so that a killed sweep loses
at most the chunk in flight, and ``resume=True`` solves only the points the file lacks.  Under
``jax.distributed`` every process solves its share of each chunk on its local devices and
process 0 gathers the chunk and writes the table.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._compile import jit
from ._generations.solve import ChainResult, chain_result, fold, generations_of
from ._params import Mixture, SolverConfig, Student, Teacher, check_instance, check_integer, real_value
from ._solve import RESULTS

#: flat name -> (which object, which field); a student's names also come as ``genK.name``
#: (generation ``K`` of a chain, 1-based); a plain student name sets every generation.
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
_GENERATION = re.compile(r"gen([1-9][0-9]*)\.(\w+)")


def parameter(name: str):
    """``(which, generation, field)`` of a flat parameter name (``generation``: ``None`` for every
    generation, else 1-based); ``ValueError`` naming the known names otherwise."""
    match = _GENERATION.fullmatch(name) if isinstance(name, str) else None
    base, k = (match.group(2), int(match.group(1))) if match else (name, None)
    if base not in PARAMETERS or (match and PARAMETERS[base][0] != "student"):
        students = [n for n, (w, _) in PARAMETERS.items() if w == "student"]
        raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}, and genK.NAME for "
                         f"generation K of a chain with NAME one of {', '.join(students)}")
    which, field = PARAMETERS[base]
    return which, k, field


def students_of(student) -> tuple:
    """A chain's students as a tuple (``None``: none; one ``Student``: one)."""
    if student is None:
        return ()
    return (student,) if isinstance(student, Student) else tuple(student)


def with_values(mixture: Mixture, teacher: Teacher, student, values: Mapping):
    """Copies of the parameter objects with the named fields replaced (traced or not); ``student``
    is ``None``, a ``Student`` or a sequence of them (a chain), and comes back in the same form.

    Concrete values are validated by the constructors, arrays element by element.
    """
    students = list(students_of(student))
    for name, value in values.items():
        which, k, field = parameter(name)
        if which == "mixture":
            mixture = mixture.replace(**{field: value})
        elif which == "teacher":
            teacher = teacher.replace(**{field: value})
        elif not students:
            raise ValueError(f"parameter {name!r} needs a student")
        elif k is not None and k > len(students):
            raise ValueError(f"parameter {name!r} names generation {k} of a chain of {len(students)}")
        else:
            for i in range(len(students)) if k is None else (k - 1,):
                students[i] = students[i].replace(**{field: value})
    if student is None or isinstance(student, Student):
        return mixture, teacher, (students[0] if students else None)
    return mixture, teacher, tuple(students)


def solve(mixture, teacher, student=None, config: SolverConfig = SolverConfig(), x0s=None, regimes=None,
          cold=None):
    """The generations at one setting (traceable, never raises): the teacher's result; the
    student's with its teacher in ``.teacher``; or, for a sequence of students, the ``ChainResult``.
    ``x0s``/``regimes``/``cold`` as in ``fold``."""
    results = fold(mixture, generations_of(teacher, students_of(student)), config, x0s, regimes, cold)
    if student is None:
        return results[0]
    if isinstance(student, Student):
        return eqx.tree_at(lambda r: r.teacher, results[1], results[0], is_leaf=lambda x: x is None)
    return chain_result(results)


class Point(eqx.Module):
    """One generation at one point of a sweep: the numbers of a table row (``teacher`` inside a
    student's point).  ``r`` and ``agreement`` are absent for the teacher."""

    gen_error: jax.Array
    m: jax.Array
    q: jax.Array
    b: jax.Array
    V: jax.Array
    r: jax.Array | None
    agreement: jax.Array | None
    train_error: jax.Array
    train_loss: jax.Array
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array
    result: RESULTS
    teacher: "Point | None" = None

    @property
    def converged(self):
        return self.result == RESULTS.successful


class ChainPoint(eqx.Module):
    """A chain at one point of a sweep: the teacher's ``Point`` and one per generation."""

    teacher: Point
    generations: tuple

    @property
    def converged(self):
        return self.generations[-1].converged

    @property
    def result(self):
        return self.generations[-1].result


def point_of(res):
    """The ``Point`` (``ChainPoint`` for a chain) of a solve (training observables included)."""
    if isinstance(res, ChainResult):
        return ChainPoint(teacher=point_of(res.teacher), generations=tuple(point_of(g) for g in res.generations))
    fields = {name: getattr(res, name) for name in Point.__dataclass_fields__ if name != "teacher"}
    return Point(**fields, teacher=None if res.teacher is None else point_of(res.teacher))


def regimes_needed(mixture, teacher, student, flat) -> tuple[bool, ...]:
    """Per generation, whether some point of the grid may have a zero ridge (a concrete check)."""
    def zero(names, lam):
        given = [np.asarray(flat[n]) for n in names if n in flat]
        return bool(np.any(given[-1] <= 0)) if given else not bool(np.all(np.asarray(lam) > 0))

    return (zero(["lam_t"], teacher.lam),) + tuple(
        zero(["lam_s", f"gen{k}.lam_s"], s.lam) for k, s in enumerate(students_of(student), start=1))


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


@jit(static_argnames=("config", "batch_size", "regimes"))
def _solve_points(base, values, *, config, batch_size, regimes):
    """``solve`` at every point of ``values`` (name -> ``(devices, points per device)``).

    The leading axis, sharded one row per device, is ``vmap``-ed (so that each device
    solves its own row).  Along a row, one point at a time (``batch_size = 1``), each starts
    from its solved predecessor in the row (continuation: neighbouring points of a grid have
    neighbouring fixed points) where that one converged; larger batches are solved together
    under ``vmap`` from the default start.  Compiled once per (parameter structure, grid names,
    shapes, config, batch size, regimes) and reused by every later sweep of that shape.
    """
    def solve_at(v, x0s=None, cold=None):
        res = solve(*with_values(*base, v), config, x0s, regimes, cold)
        return point_of(res), res

    if batch_size > 1:
        return jax.vmap(lambda row: jax.lax.map(lambda v: solve_at(v)[0], row, batch_size=batch_size))(values)

    def row_scan(row):
        first = jax.tree.map(lambda a: a[0], row)
        # placeholders of the right structure: the first point starts every generation from its own start
        starts = jax.tree.map(jnp.zeros_like, _starts(*with_values(*base, first), config))

        def step(carry, v):
            x0s, cold = carry
            pt, res = solve_at(v, x0s, cold)
            if isinstance(res, ChainResult):
                chain = [res.teacher, *res.generations]
            else:
                chain = [res.teacher, res] if res.teacher is not None else [res]
            # a generation that did not converge leaves the start as it was (its own start while none has)
            keep = tuple(jax.tree.map(lambda new, old, ok=r.converged: jnp.where(ok, new, old), r.state, x0)
                         for r, x0 in zip(chain, x0s))
            return (keep, cold & ~jnp.all(jnp.stack([r.converged for r in chain]))), pt

        return jax.lax.scan(step, (starts, jnp.asarray(True)), row)[1]

    return jax.vmap(row_scan)(values)


def _starts(mixture, teacher, student, config):
    """The structure of the generations' states (abstract: nothing is solved)."""
    states = jax.eval_shape(lambda m, t, s: [r.state for r in fold(m, generations_of(t, students_of(s)), config)],
                            mixture, teacher, student)
    return tuple(jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), states))


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
    progress: bool | Callable[[int, int], None] | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
):
    """Solve every point of the Cartesian product ``grid`` (name -> values).

    Returns the result pytree (``TeacherResult`` or ``StudentResult``) whose leaves have the
    grid's shape, in the order of ``grid``'s keys.  The points are split into chunks of
    ``chunk_size`` (all of them by default), each chunk sharded evenly over ``devices``
    (default ``jax.local_devices()``) and evaluated by one compiled call that maps the solve over
    each device's points, ``batch_size`` at a time under ``vmap`` (default
    ``default_batch_size``).  The compiled function is cached across calls.  ``progress=True``
    shows a ``tqdm`` bar over the points (``tqdm.auto``: a widget in notebooks, a line on stderr
    elsewhere), advanced after each chunk; a callable ``progress(done, total)`` is called after
    each chunk instead; ``False``/``None``: silent.

    ``out``: a CSV file written as the chunks complete (header ``index``, the grid's names, then
    one column per result leaf, see ``table_columns``; floats as ``repr``, exact), rewritten
    sorted by index at the end; an existing file is overwritten unless ``resume=True``, which
    keeps the file's points (a truncated last line is ignored), refuses a file of another grid
    with a one-line ``ValueError``, and solves only the missing points: the file and the result
    are those of an uninterrupted run.

    Under ``jax.distributed`` (initialised by the caller; on CPUs with
    ``jax_cpu_collectives_implementation = "gloo"``) every process calls ``sweep`` with the same
    arguments: each chunk is split between the processes, each solves its part on its local
    devices, the parts are gathered (``multihost_utils.process_allgather``) and process 0 writes
    ``out``; every process returns the full result.
    """
    grid, flat, shape, devices = _checked(mixture, teacher, student, grid, config, chunk_size, batch_size, devices,
                                          out, resume)
    n = int(np.prod(shape))
    progress = _progress_callback(progress)
    nproc, rank = jax.process_count(), jax.process_index()
    k = len(devices)
    chunk, per, batch = _partition(n, k, nproc, chunk_size, batch_size or default_batch_size(devices))
    sharding = NamedSharding(Mesh(np.asarray(devices), ("points",)), PartitionSpec("points"))
    base = (mixture, teacher, student)

    dtype = jnp.result_type(float)
    regimes = regimes_needed(mixture, teacher, student, flat)
    layout = _layout(base, flat, config)
    table = {name: np.zeros(n, leaf.dtype) for name, leaf in zip(layout.names, layout.leaves)}
    done = np.zeros(n, bool)
    writer = _shared_table(out, grid, flat, layout, table, done, resume, nproc, rank)

    # Chunks are fixed ranges of the flat index, so that a point is solved from the same start
    # (its neighbour in the chunk, see _solve_points) in an uninterrupted run and after a resume.
    count = int(done.sum())
    if isinstance(progress, ProgressBar):
        progress(count, n)  # the bar shows from the start (the first chunk includes compilation)
    try:
        for start in range(0, n, chunk):
            idx = np.arange(start, min(start + chunk, n))
            new = idx[~done[idx]]
            if new.size == 0:
                continue
            mine = np.resize(idx, chunk)[rank * per:(rank + 1) * per]  # padded by repetition
            values = {name: jax.device_put(jnp.asarray(arr[mine].reshape(k, per // k), dtype), sharding)
                      for name, arr in flat.items()}
            res = _solve_points(base, values, config=config, batch_size=batch, regimes=regimes)
            leaves = [np.asarray(x).reshape(per) for x in jax.tree_util.tree_leaves(res)]
            if nproc > 1:
                from jax.experimental import multihost_utils

                leaves = [np.asarray(x).reshape(chunk) for x in multihost_utils.process_allgather(leaves)]
            for name, leaf in zip(layout.names, leaves):
                table[name][new] = leaf[new - start]
            done[new] = True
            if writer is not None:
                writer.append(new)
            count += new.size
            if progress is not None:
                progress(count, n)
        if writer is not None:
            writer.finish()
    finally:
        if writer is not None:
            writer.close()
        if isinstance(progress, ProgressBar):
            progress.close()
    leaves = [table[name].reshape(shape) for name in layout.names]
    return jax.tree_util.tree_unflatten(layout.treedef, leaves)


def _checked(mixture, teacher, student, grid, config, chunk_size, batch_size, devices, out, resume) -> tuple:
    """``sweep``'s eager checks (every grid value included): ``(grid, flat points, grid shape, devices)``."""
    grid = dict(grid or {})
    if not grid:
        raise ValueError("grid must name at least one parameter")
    check_instance("mixture", mixture, Mixture)
    check_instance("teacher", teacher, Teacher)
    flat, shape = grid_points(grid)
    with_values(mixture, teacher, student, flat)  # eager validation of every value
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
        if value is not None:
            check_integer(name, value, 1)
    check_instance("config", config, SolverConfig)
    if resume and out is None:
        raise ValueError("resume=True needs out, the file to resume")
    return grid, flat, shape, devices


def _progress_callback(progress):
    """``sweep``'s ``progress`` as ``None``, a ``ProgressBar`` or the caller's callable."""
    if progress is True:
        return ProgressBar("sweep")
    if progress is False or progress is None:
        return None
    if not callable(progress):
        raise ValueError(f"progress must be True, False, None or a callable (done, total), got {progress!r}")
    return progress


def _partition(n: int, devices: int, processes: int, chunk_size, batch_size) -> tuple:
    """``(chunk, per, batch)``: points per chunk (a multiple of the devices of all processes), per
    process, and per ``vmap`` batch on a device."""
    unit = devices * processes
    chunk = max(unit, -(-(chunk_size or n) // unit) * unit)
    per = chunk // processes
    return chunk, per, min(int(batch_size), per // devices)


def _shared_table(out, grid, flat, layout, table, done, resume, nproc, rank):
    """Process 0's ``_TableFile`` on ``out`` (``None`` elsewhere or without ``out``); the points it read
    (or its refusal) go to every process (``table`` and ``done`` filled in place)."""
    writer, failure = None, None
    if out is not None and rank == 0:
        try:
            writer = _TableFile(out, grid, flat, layout, table, done, resume)
        except (ValueError, OSError) as err:
            if nproc == 1:
                raise
            failure = err
    if nproc > 1:
        from jax.experimental import multihost_utils

        failed, found, values = multihost_utils.broadcast_one_to_all((np.asarray(failure is not None), done, table))
        if failure is not None:
            raise failure
        if bool(failed):
            raise ValueError(f"process 0 cannot write {os.fspath(out)} (its error says why)")
        done[:] = np.asarray(found)
        for name, column in table.items():
            column[:] = np.asarray(values[name])
    return writer


class ProgressBar:
    """``update(done, total)``: a ``tqdm.auto`` bar over points (a widget in notebooks, a line on
    stderr elsewhere) labelled ``label``, created at the first update and closed when ``done``
    reaches ``total``.  ``disable=None``: drawn only when stderr is a terminal (the CLI)."""

    def __init__(self, label: str, *, disable: bool | None = False):
        self.label, self.disable, self.bar = label, disable, None

    def __call__(self, done: int, total: int):
        if self.bar is None:
            from tqdm.auto import tqdm  # imported on first use: `import kdjax` stays light

            self.bar = tqdm(total=total, initial=done, desc=self.label, unit="pt", disable=self.disable,
                            dynamic_ncols=True)
        else:
            self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The result pytree of one point: its structure, leaves (shape/dtype) and column names."""

    treedef: object
    leaves: list
    names: list


def _layout(base, flat, config) -> _Layout:
    """The result layout of a sweep: depends only on the parameters' structure (static fields
    included), the grid's names and the config, so it is traced once per such combination."""
    dtype = jnp.dtype(jnp.result_type(float))
    return _layout_of(jax.tree_util.tree_structure(base), len(jax.tree_util.tree_leaves(base)),
                      tuple(flat), config, dtype, base[2] is not None)


@lru_cache(maxsize=None)
def _layout_of(treedef, n_leaves, names, config, dtype, with_student) -> _Layout:
    scalar = jax.ShapeDtypeStruct((), dtype)
    point = {name: scalar for name in names}
    base = jax.tree_util.tree_unflatten(treedef, [scalar] * n_leaves)
    struct = jax.eval_shape(lambda b, v: point_of(solve(*with_values(*b, v), config)), base, point)
    if any(leaf.shape != () for leaf in jax.tree_util.tree_leaves(struct)):
        raise NotImplementedError("sweep tables hold one number per result field and point")
    return _Layout(jax.tree_util.tree_structure(struct), jax.tree_util.tree_leaves(struct),
                   result_column_names(struct, with_student))


def result_column_names(result, with_student: bool) -> list[str]:
    """Column names of the leaves of a result: ``teacher_<field>`` (the teacher's, also inside a
    student result), ``student_<field>`` and, for a chain, ``genK_<field>``, in the pytree's leaf
    order."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(result)[0]:
        parts = [str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))) for key in path]
        parts = [part for part in parts if not part.startswith("_")]  # a RESULTS code's value
        if parts[0] == "generations":
            parts = [f"gen{int(parts[1]) + 1}"] + parts[2:]
        elif not with_student:
            parts = ["teacher"] + parts
        elif parts[0] != "teacher":
            parts = ["student"] + parts
        names.append("_".join(parts))
    return names


def table_columns(grid: Mapping[str, object], result, student: Student | None = None) -> dict[str, np.ndarray]:
    """The sweep's table as flat columns: ``index``, the grid's names, then every result leaf
    (``result_column_names``), one entry per point in the grid's (C) order."""
    flat, shape = grid_points(dict(grid))
    n = int(np.prod(shape))
    columns = {"index": np.arange(n)} | dict(flat)
    names = result_column_names(result, student is not None)
    for name, leaf in zip(names, jax.tree_util.tree_leaves(result)):
        columns[name] = np.asarray(leaf).reshape(n)
    return columns


def format_cell(value) -> str:
    """A table cell: 0/1 for flags, integers as such, floats as ``repr`` (exact round trip)."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def _parse_cell(text: str, dtype):
    if np.dtype(dtype) == np.bool_:
        if text not in ("0", "1"):
            raise ValueError(text)
        return text == "1"
    if np.issubdtype(dtype, np.integer):
        return int(text)
    return float(text)


class _TableFile:
    """The CSV file of a sweep, written by one process: header, then rows as chunks complete."""

    def __init__(self, path, grid, flat, layout, table, done, resume):
        self.path = os.fspath(path)
        self.flat, self.layout, self.table, self.done = flat, layout, table, done
        self.header = ["index", *flat, *layout.names]
        self.order: list[int] = []  # the indices in file order
        n = done.size
        if resume and os.path.exists(self.path):
            good = self._read(grid)
            self.fh = open(self.path, "r+b")
            self.fh.truncate(good)
            self.fh.seek(good)
            if good == 0:
                self._write_lines([",".join(self.header)])
            print(f"kdjax: resuming {self.path}: {len(self.order)} of {n} points found, "
                  f"{n - len(self.order)} remain", file=sys.stderr, flush=True)
        else:
            if resume:
                print(f"kdjax: resuming {self.path}: no such file, all {n} points remain",
                      file=sys.stderr, flush=True)
            self.fh = open(self.path, "wb")
            self._write_lines([",".join(self.header)])

    def _read(self, grid) -> int:
        """Load the file's rows into the table; the byte length of its complete lines."""
        with open(self.path, "rb") as fh:
            data = fh.read()
        good = data.rfind(b"\n") + 1  # a last line without its newline was cut short
        lines = data[:good].decode("utf-8", errors="replace").split("\n")[:-1]
        where = f"cannot resume {self.path}"
        if not lines:
            return 0
        found = lines[0].split(",")
        if found != self.header:
            raise ValueError(f"{where}: {_header_mismatch(found, self.header, list(self.flat))}")
        dtypes = [np.dtype(int)] + [np.dtype(float)] * len(self.flat) + [leaf.dtype for leaf in self.layout.leaves]
        n = self.done.size
        for lineno, line in enumerate(lines[1:], start=2):
            cells = line.split(",")
            try:
                if len(cells) != len(self.header):
                    raise ValueError
                row = [_parse_cell(c, d) for c, d in zip(cells, dtypes)]
            except ValueError:
                raise ValueError(f"{where}: line {lineno} is not a row of {len(self.header)} numbers") from None
            i = row[0]
            if not 0 <= i < n:
                raise ValueError(f"{where}: line {lineno} has index {i}, outside the requested grid of {n} points")
            for name, v in zip(self.flat, row[1:]):
                g = float(self.flat[name][i])
                if not (v == g or (v != v and g != g)):
                    raise ValueError(f"{where}: point {i} has {name} = {v!r} in the file but {g!r} in the "
                                     f"requested grid ({_axes(grid)})")
            if self.done[i]:
                raise ValueError(f"{where}: point {i} appears twice (line {lineno})")
            for name, v in zip(self.layout.names, row[1 + len(self.flat):]):
                self.table[name][i] = v
            self.done[i] = True
            self.order.append(i)
        return good

    def _rows(self, indices):
        cols = [self.flat[name] for name in self.flat] + [self.table[name] for name in self.layout.names]
        return [",".join([str(int(i))] + [format_cell(c[i]) for c in cols]) for i in indices]

    def _write_lines(self, lines):
        self.fh.write(("".join(line + "\n" for line in lines)).encode())
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def append(self, indices):
        self._write_lines(self._rows(indices))
        self.order.extend(int(i) for i in indices)

    def finish(self):
        """Sorted by index, as an uninterrupted run writes it (atomically replaced if needed)."""
        self.close()
        n = self.done.size
        if self.order == list(range(n)):
            return
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write("".join(line + "\n" for line in [",".join(self.header)] + self._rows(range(n))).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def close(self):
        if not self.fh.closed:
            self.fh.close()


def _axes(grid) -> str:
    return ", ".join(f"{name}: {np.size(values)} values" for name, values in grid.items())


def _header_mismatch(found, expected, params) -> str:
    """One line naming how a file's header differs from the requested sweep's."""
    got_params = [c for c in found[1:] if not c.startswith(("teacher_", "student_"))]
    if found[:1] != ["index"]:
        return "its first line is not a sweep table header (index, parameters, results)"
    if got_params != params:
        return (f"its grid is over ({', '.join(got_params) or 'nothing'}), the requested grid over "
                f"({', '.join(params)})")
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        what = []
        if missing:
            what.append(f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            what.append(f"has {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        return f"its result columns differ from the requested sweep's (the file {' and '.join(what)})"
    return "its columns are in another order than the requested sweep's"
