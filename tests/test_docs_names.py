"""The documentation names only what exists: every ``kdjax.NAME`` (and ``kdjax.simulate.NAME``)
in README.md, docs/*.md and the docstrings of the modules under src/kdjax resolves, the
arguments written as ``kdjax.NAME(a, b=...)`` are fields or parameters of NAME, every
``ClassName`` of a docstring is a class of the package (or a builtin), and every backticked file
path (``kdjax/_generations/kd.py``, ``src/kdjax/...``, ``tests/...``, a bare ``_losses.py``) is a
file of the repository.  Fast: imports only, no solve."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

import kdjax

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

NAME = re.compile(r"(?<![\w/.])kdjax((?:\.[A-Za-z_]\w*)+)(\([^()`]*\))?")
CODE = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"^[\w./-]+\.(?:py|md|toml|png|csv)$|^[\w.-]+(?:/[\w.-]+)*/$")
IDENT = re.compile(r"^[A-Za-z_]\w*$")
# where a path without a folder, or relative to the package, may live
BASES = ("", "src", "src/kdjax", "src/kdjax/_generations", "src/kdjax/paper")


def _resolve(dotted: str):
    """The object named ``kdjax.<dotted>``: attributes, importing submodules where needed."""
    obj, module = kdjax, "kdjax"
    for part in dotted.strip(".").split("."):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            obj = importlib.import_module(f"{module}.{part}")  # e.g. kdjax._generations
        module = f"{module}.{part}"
    return obj


def _parameters(obj) -> set[str]:
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)}
    return set(inspect.signature(obj).parameters)


def _names():
    for doc in DOCS:
        for lineno, line in enumerate(doc.read_text().splitlines(), start=1):
            for match in NAME.finditer(line):
                yield f"{doc.name}:{lineno}", match.group(1), match.group(2), doc.parent.name == "docs"


SOURCES = sorted((ROOT / "src" / "kdjax").rglob("*.py"))


def _docstrings():
    """``(where, text)`` of every module, class and function docstring under src/kdjax."""
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node, clean=False)
                if text:
                    lineno = node.body[0].lineno
                    yield f"{path.relative_to(ROOT)}:{lineno}", text


def _docstring_names():
    for where, text in _docstrings():
        for match in NAME.finditer(text):
            if text[match.end():match.end() + 1] == "*":
                continue  # a pattern such as ``kdjax._*``
            # positional names in docstrings are the caller's variables (as in README examples)
            yield where, match.group(1), match.group(2), False


def _paths():
    for doc in DOCS:
        for lineno, line in enumerate(doc.read_text().splitlines(), start=1):
            for match in CODE.finditer(line):
                token = match.group(1).split(" ")[0]
                if PATH.match(token) and "/" in token or re.match(r"^_?\w+\.py$", token):
                    yield f"{doc.name}:{lineno}", token


def _missing(names) -> list[str]:
    missing = []
    for where, dotted, call, strict in names:
        try:
            obj = _resolve(dotted)
        except (AttributeError, ImportError) as err:
            missing.append(f"{where}: kdjax{dotted} ({err})")
            continue
        if call is None or not callable(obj):
            continue
        args = [a.strip() for a in call[1:-1].split(",") if a.strip()]
        try:
            known = _parameters(obj)
        except (TypeError, ValueError):
            continue
        for arg in args:
            # keywords always name a parameter; bare positional names do in docs/ (not in
            # README examples, where they are the caller's variables)
            name = arg.split("=")[0].strip() if "=" in arg else (arg if strict else None)
            if name and IDENT.match(name) and name not in known:
                missing.append(f"{where}: kdjax{dotted} has no parameter {name!r} (has {sorted(known)})")
    return missing


def test_every_kdjax_name_in_the_docs_exists():
    missing = _missing(_names())
    assert not missing, "\n".join(missing)


def test_every_kdjax_name_in_the_docstrings_exists():
    """``kdjax.NAME`` (and ``kdjax.NAME(keyword=...)``) in the docstrings of the package."""
    missing = _missing(_docstring_names())
    assert not missing, "\n".join(missing)


CLASS = re.compile(r"``([A-Z][a-z]\w*[a-z]\w*)(?:\.\w+)?(?:\([^`]*\))?``")
NOT_KDJAX = {"Phi", "Xi_row", "Figure"}  # maths (the normal cdf, a row of Xi) and matplotlib's Figure


def test_every_backticked_class_name_in_the_docstrings_exists():
    """A ``ClassName`` in a docstring is a class of the package (``TeacherResult``, ``Inheritance``)
    or a builtin (``ValueError``, ``None``)."""
    import builtins

    modules = [builtins]
    for path in SOURCES:
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        modules.append(importlib.import_module(".".join(p for p in parts if p != "__init__")))
    missing = []
    for where, text in _docstrings():
        for name in CLASS.findall(text):
            if name not in NOT_KDJAX and not any(hasattr(m, name) for m in modules):
                missing.append(f"{where}: {name}")
    assert not missing, "\n".join(missing)


def test_every_backticked_path_in_the_docs_exists():
    missing = []
    for where, token in _paths():
        if token.startswith("kdjax/"):
            candidates = [ROOT / "src" / token]
        else:
            candidates = [ROOT / base / token for base in BASES]
        if not any(c.exists() for c in candidates):
            missing.append(f"{where}: {token}")
    assert not missing, "\n".join(missing)


ATTR = re.compile(r"^([A-Z]\w*)\.([a-z_]\w*)$")
# where a backticked ``Class.attribute`` of the docs may come from
NAMESPACES = ("kdjax", "kdjax._generations", "kdjax._generations.solve", "kdjax._losses", "kdjax._params",
              "kdjax._sweep", "kdjax._solve")


def _members(cls) -> set[str]:
    names = set(dir(cls))
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls)}
    return names


def test_every_backticked_class_attribute_exists():
    """``Loss.channel``, ``KD.r_teacher``, ``Mixture.label_noise``, ``SameInputs.predecessor_nodes``..."""
    modules = [importlib.import_module(m) for m in NAMESPACES]
    missing, seen = [], 0
    for doc in DOCS:
        for lineno, line in enumerate(doc.read_text().splitlines(), start=1):
            for match in CODE.finditer(line):
                attr = ATTR.match(match.group(1).split("(")[0])
                if not attr:
                    continue
                owners = [getattr(m, attr.group(1)) for m in modules if hasattr(m, attr.group(1))]
                if not owners:
                    continue  # not a kdjax class (e.g. a formula)
                seen += 1
                if not any(attr.group(2) in _members(o) for o in owners):
                    missing.append(f"{doc.name}:{lineno}: {match.group(1)}")
    assert seen > 10
    assert not missing, "\n".join(missing)


def test_the_check_sees_the_docs():
    """Guard against a silently empty scan."""
    assert any(d.name == "model.md" for d in DOCS)
    assert sum(1 for _ in _names()) > 20 and sum(1 for _ in _paths()) > 10
    assert sum(1 for _ in _docstring_names()) > 20


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
