"""kdjax inside a user's jit(grad(...)): the example's gradient against finite differences."""

import importlib.util
import pathlib

import jax
import pytest

pytestmark = pytest.mark.slow  # long-running: `pytest -m slow`


def _example():
    path = pathlib.Path(__file__).parents[1] / "examples" / "embedding.py"
    spec = importlib.util.spec_from_file_location("embedding_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jit_grad_of_an_objective_combining_several_solves():
    ex = _example()
    value, g = ex.value_and_grad(0.3)
    f = jax.jit(ex.tradeoff)
    h = 1e-4
    fd = (f(0.3 + h) - f(0.3 - h)) / (2 * h)
    assert abs(float(g) - float(fd)) <= 1e-5 * max(abs(float(fd)), 1e-3)
    assert abs(float(value) - float(f(0.3))) < 1e-12
