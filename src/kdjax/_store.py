"""kdjax's programs kept between processes, so that a warm start skips tracing and lowering.

JAX's persistent compilation cache (``kdjax.enable_compilation_cache``) keys a compiled program
by its lowered StableHLO, so a fresh process still traces and lowers every program before it
finds it there: most of what ``kdjax solve`` waits for with a warm cache.  Where that cache is on
(``jax_compilation_cache_dir`` set), a kdjax program called at the top level (concrete arguments,
no transformation) is also kept in the folder's ``kdjax-programs`` subfolder as a ``jax.export``
artefact of its flattened form, named by a digest of everything its program depends on: the
function, the structure and abstract values of its arguments, its static arguments, kdjax's
source and the JAX version, backend and ``jax_enable_x64``.  A later process with the same
digest loads it and calls it (no tracing or lowering of kdjax code), and the compiled executable
comes from JAX's cache as before.

Nothing here changes a number: the program stored is the one JAX would compile.  Anything that
cannot be stored or loaded (a JAX without ``jax.export``, a program JAX refuses to export, an
unreadable file) falls back to the plain call, and a file is written atomically (a concurrent
process reads either nothing or a whole file).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import sys
import tempfile
import types

import jax

SUBFOLDER = "kdjax-programs"


def folder() -> str | None:
    """The store's folder, or ``None`` when JAX's persistent cache is off."""
    root = jax.config.jax_compilation_cache_dir
    return os.path.join(root, SUBFOLDER) if root else None


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A digest of kdjax's source files: a stored program is only reused by the code that stored it."""
    package = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for directory, _, files in sorted(os.walk(package)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, package).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def describe(x):
    """A description of ``x`` (a function, a pytree structure, a static argument) that is the same
    in every process for equal values: functions by their code, defaults and captured values,
    dataclasses (kdjax's parameters, losses and configurations) by their fields, containers by
    their items.  ``ValueError`` for a value whose ``repr`` names an
    object's address (no stable description: such a program is not stored)."""
    if isinstance(x, jax.tree_util.PyTreeDef):
        data = x.node_data()
        return "*" if data is None else (describe(data), tuple(describe(c) for c in x.children()))
    if isinstance(x, type):
        return f"{x.__module__}.{x.__qualname__}"
    if isinstance(x, functools.partial):
        return ("partial", describe(x.func), describe(x.args), describe(x.keywords))
    if isinstance(x, types.FunctionType):  # by its code's place, defaults and captured values
        code = x.__code__
        cells = tuple(describe(c.cell_contents) for c in x.__closure__ or ())
        return ("function", x.__module__, x.__qualname__, code.co_firstlineno, describe(code),
                describe(x.__defaults__), describe(x.__kwdefaults__), cells)
    if isinstance(x, types.CodeType):
        return ("code", x.co_code.hex(), x.co_names, describe(x.co_consts))
    if dataclasses.is_dataclass(x):
        return (describe(type(x)), tuple((f.name, describe(getattr(x, f.name))) for f in dataclasses.fields(x)))
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(describe(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple((describe(k), describe(v)) for k, v in sorted(x.items(), key=lambda kv: repr(kv[0]))))
    text = f"{type(x).__qualname__}:{x!r}"
    if " at 0x" in text:
        raise ValueError(f"no stable description of {text}")
    return text


def _name(fun, tree, avals, static) -> str:
    import jaxlib

    parts = (describe(fun), describe(tree),
             tuple(str(a) for a in avals), describe(static), _source_digest(), jax.__version__,
             jaxlib.__version__, jax.default_backend(), bool(jax.config.jax_enable_x64), sys.version_info[:2])
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class Store:
    """The stored programs of one kdjax function (``fun``, with ``static`` keyword arguments),
    loaded or exported once per argument structure in this process."""

    def __init__(self, fun, jit_options):
        self._fun, self._jit_options, self._loaded = fun, jit_options, {}

    @staticmethod
    def enabled() -> bool:
        """Whether programs are stored (JAX's persistent cache is on)."""
        return folder() is not None

    def call(self, args, dynamic: dict, static: dict):
        """``fun(*args, **dynamic, **static)`` through its stored program, or ``None`` where it
        cannot be stored (then the caller calls it plainly)."""
        where = folder()
        if where is None:
            return None
        leaves, tree = jax.tree_util.tree_flatten((args, dynamic))
        avals = tuple(jax.typeof(x) for x in leaves)
        key = (tree, avals, tuple(sorted(static.items())))
        entry = self._loaded.get(key)
        if entry is None:
            entry = self._loaded[key] = self._load_or_export(where, tree, avals, static)
        if entry is False:
            return None
        program, out_tree = entry
        return jax.tree_util.tree_unflatten(out_tree, program(*leaves))

    def _load_or_export(self, where, tree, avals, static):
        try:
            path = os.path.join(where, _name(self._fun, tree, avals, static) + ".pkl")
            try:
                with open(path, "rb") as f:
                    exported, skeleton = pickle.load(f)
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
                exported, skeleton = self._export(tree, avals, static)
                _write(path, (exported, skeleton))
            program = jax.jit(exported.call, **self._jit_options)
            return program, jax.tree_util.tree_structure(skeleton)
        except Exception:  # noqa: BLE001 - never worse than the plain call
            return False

    def _export(self, tree, avals, static):
        """The program of ``fun`` on flat arguments, exported for this backend, and a skeleton of its
        output (the output's pytree with the leaf indices as leaves: pickled as objects, whose
        structure a later process rebuilds with its own pytree registry)."""
        out_trees = []

        def flat(*leaves):
            args, dynamic = jax.tree_util.tree_unflatten(tree, leaves)
            out, out_tree = jax.tree_util.tree_flatten(self._fun(*args, **dynamic, **static))
            out_trees.append(out_tree)
            return out

        shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
        exported = jax.export.export(jax.jit(flat))(*shapes)
        # (the exported VJP is a closure over this process; the stored program is called, never differentiated)
        exported = dataclasses.replace(exported, _get_vjp=None)
        out_tree = out_trees[-1]
        return exported, jax.tree_util.tree_unflatten(out_tree, list(range(out_tree.num_leaves)))


def _write(path: str, value) -> None:
    """Pickle ``value`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
