"""Sweeps (jit(vmap), chunks, sharding) and the recipe optimiser."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kdjax
from kdjax import optimize_kd, sweep
from kdjax.cli import main

MIX, TEACHER = kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1)


def test_teacher_sweep_matches_single_solves_and_chunks_change_nothing():
    grid = {"lam_t": [0.01, 0.1, 1.0], "alpha": [0.5, 2.0, 4.0]}
    whole = sweep(MIX, TEACHER, None, grid)
    chunked = sweep(MIX, TEACHER, None, grid, chunk_size=4)
    assert whole.gen_error.shape == (3, 3)
    # chunks change the continuation starts (each point starts from its solved neighbour in the
    # chunk), not the fixed point: equal to the solver's tolerance
    np.testing.assert_allclose(chunked.gen_error, whole.gen_error, rtol=1e-10)
    for i, lam in enumerate(grid["lam_t"]):
        for j, alpha in enumerate(grid["alpha"]):
            single = kdjax.solve_teacher(kdjax.Mixture(alpha, 1.0), kdjax.Teacher("logistic", lam))
            np.testing.assert_allclose(whole.gen_error[i, j], single.gen_error, rtol=1e-9)
            np.testing.assert_allclose(whole.q[i, j], single.q, rtol=1e-9)
    assert bool(np.all(whole.converged))


def test_points_without_a_finite_minimiser_are_flagged_not_dropped():
    res = sweep(MIX, kdjax.Teacher("logistic", 0.0), None, {"alpha": [2.0, 5.0]})
    assert list(res.finite_minimiser) == [False, True]
    assert list(res.converged) == [False, True]


def test_student_sweep_matches_a_single_solve():
    s = kdjax.Student(0.5, 2.0, 0.2, 0.01)
    res = sweep(MIX, TEACHER, s, {"temperature": [0.5, 3.0]})
    single = kdjax.solve_student(MIX, TEACHER, s.replace(temperature=3.0))
    np.testing.assert_allclose([res.gen_error[1], res.agreement[1], res.teacher.q[1]],
                               [single.gen_error, single.agreement, single.teacher.q], rtol=1e-9)


def test_invalid_grids_name_the_field():
    with pytest.raises(ValueError, match="unknown parameter 'beta'"):
        sweep(MIX, TEACHER, None, {"beta": [1.0]})
    with pytest.raises(ValueError, match="lam_t"):
        sweep(MIX, TEACHER, None, {"lam_t": [0.1, -1.0]})
    with pytest.raises(ValueError, match="needs a student"):
        sweep(MIX, TEACHER, None, {"temperature": [1.0]})


def test_sharded_over_four_host_devices_equals_one_device():
    code = textwrap.dedent(
        """
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import kdjax
        from kdjax import sweep
        assert len(jax.devices()) == 4
        mix, t = kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1)
        grid = {"lam_t": list(np.geomspace(1e-2, 1.0, 5)), "alpha": [1.0, 3.0]}
        many = sweep(mix, t, None, grid, chunk_size=8)
        one = sweep(mix, t, None, grid, devices=jax.devices()[:1])
        # each point starts from its solved neighbour on the same device (continuation), so the
        # starts depend on the sharding; the fixed point does not (solver tolerance 1e-10)
        np.testing.assert_allclose(many.gen_error, one.gen_error, rtol=1e-10, atol=0)
        np.testing.assert_allclose(many.q, one.q, rtol=1e-10, atol=0)
        assert (many.result == kdjax.RESULTS.successful).all()
        print("ok", many.gen_error.shape)
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok (5, 2)" in out.stdout


def test_cli_sweep_writes_json_and_rejects_malformed_files(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\nlam_t = [0.05, 0.5]\nalpha = "lin:1:3:2"\n')
    out = tmp_path / "out.json"
    assert main(["sweep", "--grid-file", str(grid), "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["lam_t"] == [0.05, 0.05, 0.5, 0.5] and data["alpha"] == [1.0, 3.0, 1.0, 3.0]
    assert all(np.isfinite(data["teacher_gen_error"])) and all(code == 0 for code in data["teacher_result"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"grid": {"temperature": [1, "hot"]}}')
    assert main(["sweep", "--grid-file", str(bad)]) == 2
    assert "temperature" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["sweep", "--grid-file", str(bad)]) == 2


@pytest.mark.slow
def test_gradient_search_reaches_the_grid_optimum_with_fewer_solves():
    # The teacher's own best ridge on an imbalanced mixture: a dense grid against the gradient search.
    mix = kdjax.Mixture(2.0, 1.0, 0.3)
    grid = np.geomspace(1e-3, 1e3, 400)
    errors = sweep(mix, TEACHER, None, {"lam_t": grid}).gen_error
    best = optimize_kd(mix, kdjax.Teacher("logistic", 1.0), None, ("lam_t",), objective="teacher")
    assert best.converged
    assert best.gen_error <= errors.min() + 1e-6
    assert best.solves * 10 <= grid.size
    assert best.path["gen_error"][-1] <= best.path["gen_error"][0]


@pytest.mark.slow
def test_balanced_teacher_is_best_at_infinite_ridge_where_it_is_bayes_optimal():
    # Balanced mixture: the error decreases with lam_t towards the Bayes-optimal error.
    best = optimize_kd(MIX, kdjax.Teacher("logistic", 1.0), None, ("lam_t",), objective="teacher")
    assert best.params["lam_t"] > 100.0
    assert abs(best.gen_error - float(kdjax.bayes_optimal_error(MIX))) < 1e-5


@pytest.mark.parametrize("grid,kwargs,needle", [
    ({"alpha": ["abc"]}, {}, "grid field 'alpha' must be a real number"),
    ({"alpha": [True, 2.0]}, {}, "grid field 'alpha' must be a real number"),
    ({"alpha": [1.0, 2.0]}, {"chunk_size": 0}, "chunk_size must be an integer >= 1"),
    ({"alpha": [1.0, 2.0]}, {"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ({"alpha": [1.0, 2.0]}, {"devices": []}, "devices must name at least one device"),
])
def test_sweep_options_are_checked_by_name(grid, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        sweep(MIX, TEACHER, None, grid, **kwargs)
