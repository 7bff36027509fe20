"""Input validation: one-line ``ValueError`` naming the parameter (API), exit status 2 (CLI).

Only user construction is validated: JAX tracers pass (``jit``/``vmap``/``grad`` and
``dataclasses.replace`` under them), and pytrees rebuilt by JAX skip ``__init__``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import (
    Mixture,
    SolverConfig,
    Student,
    Teacher,
    agreement,
    bayes_optimal_error,
    bayes_optimal_overlaps,
    gen_error,
    separability_threshold,
    solve_teacher,
    sweep,
)
from kdjax.cli import build_parser, main
from kdjax.simulate import simulate_student, simulate_teacher


def one_line_error(make) -> str:
    with pytest.raises(ValueError) as err:
        make()
    text = str(err.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- parameter objects

NOT_REAL = ["abc", None, 1j, True, np.bool_(False), [2.0, 3.0], object(), np.array([[1j, 2.0]]), jnp.asarray(1.0 + 0j)]


@pytest.mark.parametrize("value", NOT_REAL, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("name,make", [
    ("alpha", lambda v: Mixture(v, 1.0)),
    ("rho", lambda v: Mixture(1.0, 1.0, v)),
    ("lam_t", lambda v: Teacher("logistic", v)),
    ("temperature", lambda v: Student(temperature=v)),
    ("alpha_s", lambda v: Student(data="fresh", alpha=v)),
    ("tol", lambda v: SolverConfig(tol=v)),
])
def test_non_real_values_are_rejected_by_name(name, make, value):
    if name == "alpha_s" and value is None:
        expected = "alpha_s (Student.alpha) is required"
    else:
        expected = f"{name} must be a real number, got "
    assert expected in one_line_error(lambda: make(value))


@pytest.mark.parametrize("value", [2, 2.0, np.float32(2.0), np.int64(2), np.array([1.0, 2.0]), np.arange(1, 3),
                                   jnp.asarray(2.0), jnp.asarray([1.0, 2.0])], ids=repr)
def test_real_numbers_and_arrays_of_any_real_dtype_are_accepted(value):
    assert Mixture(value, 1.0).alpha is value
    assert Student(data="fresh", alpha=value).alpha is value


def test_traced_values_skip_validation_and_pytrees_round_trip():
    base = Student(gamma=0.5, data="fresh", alpha=2.0)
    replaced = jax.jit(lambda a: dataclasses.replace(base, alpha=a, temperature=a).alpha)(3.0)
    assert float(replaced) == 3.0
    np.testing.assert_allclose(jax.vmap(lambda a: Mixture(a, 1.0).alpha)(jnp.arange(1.0, 4.0)), [1.0, 2.0, 3.0])
    assert float(jax.grad(lambda t: Teacher("logistic", t).lam ** 2)(3.0)) == 6.0
    # JAX rebuilds pytrees with arbitrary leaves without validation
    assert jax.tree_util.tree_map(lambda _: "leaf", Mixture(1.0, 1.0)).alpha == "leaf"
    # data="same" keeps alpha None; a traced alpha is tolerated, a concrete one is not
    assert Student().alpha is None
    assert "only to data='fresh'" in one_line_error(lambda: Student(alpha=np.float64(1.0)))


def test_solver_config_takes_numpy_integers_and_stays_hashable():
    config = SolverConfig(degree=np.int64(64), max_steps=np.int32(10), tol=np.float64(1e-9), damping=1)
    assert config == SolverConfig(degree=64, max_steps=10, tol=1e-9, damping=1.0)
    assert type(config.degree) is int and type(config.max_steps) is int and type(config.damping) is float
    assert hash(config) == hash(SolverConfig(degree=64, max_steps=10, tol=1e-9, damping=1.0))
    assert config.replace(degree=np.int16(32)).degree == 32


@pytest.mark.parametrize("make,message", [
    (lambda: SolverConfig(degree=True), "degree must be an integer >= 2, got True"),
    (lambda: SolverConfig(newton_steps=np.float64(100.0)), "newton_steps must be an integer >= 2"),
    (lambda: SolverConfig(degree_2d="48"), "degree_2d must be an integer >= 2, got '48'"),
    (lambda: SolverConfig(max_steps=np.int64(1)), "max_steps must be an integer >= 2"),
    (lambda: SolverConfig(tol=np.array([1e-9, 1e-8])), "tol must be a real number (static)"),
    (lambda: SolverConfig(damping=False), "damping must be a real number"),
    (lambda: Teacher(["logistic"], 0.1), "teacher loss must be one of"),
    (lambda: solve_teacher((2.0, 1.0), Teacher("logistic", 0.1)), "mixture must be a Mixture, got (2.0, 1.0)"),
    (lambda: sweep((2.0, 1.0), Teacher("logistic", 0.1), None, {"lam_t": [0.1]}), "mixture must be a Mixture"),
    (lambda: sweep(Mixture(2.0, 1.0), "logistic", None, {"lam_t": [0.1]}), "teacher must be a Teacher"),
])
def test_static_fields_and_types_are_checked_by_name(make, message):
    assert message in one_line_error(make)


# --------------------------------------------------------------------------- command line


def run_cli(argv, capsys):
    """``(exit status, stderr, stdout)`` of ``kdjax argv``, whether argparse or a command rejects it."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.err, out.out


SWEEP = ["sweep", "--grid", "lam_t=0.1,1"]
CLI_ERRORS = [
    (["solve", "--alpha", "abc"], "--alpha must be a number, got 'abc'"),
    (["solve", "--delta", "-inf"], "delta must be in (0.0, inf), got -inf"),
    (["solve", "--rho", "-1e-3"], "rho must be in (0.0, 1.0), got -0.001"),
    (["solve", "--hard-weight", "-.5"], "hard_weight must be in [0.0, 1.0], got -0.5"),
    (["solve", "--alpha-s", "many"], "--alpha-s must be a number, got 'many'"),
    (["solve", "--alpha"], "--alpha: expected one argument"),
    (["solve", "--student-data", ""], "student data must be one of same, fresh"),
    (["solve", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ([], "the following arguments are required: command"),
    (["validate", "--n-features", "0"], "--n-features must be a positive integer, got '0'"),
    (["validate", "--seeds", "2.5"], "--seeds must be a positive integer, got '2.5'"),
    (["validate", "--seeds", "-3"], "--seeds must be a positive integer, got '-3'"),
    (SWEEP + ["--chunk-size", "0"], "--chunk-size must be a positive integer, got '0'"),
    (SWEEP + ["--format", "xml"], "--format must be one of csv, json, got 'xml'"),
    (SWEEP + ["--out", "/nonexistent-folder/out.csv"], "--out must be a file in an existing folder"),
    (["sweep", "--grid", "alpha"], "--grid expects name=values, got 'alpha'"),
    (["sweep", "--grid", "alpha=1,,2"], "grid field 'alpha': cannot read '1,,2'"),
    (["sweep", "--grid", "lam-t=lin:0:1"], "grid field 'lam_t': cannot read 'lin:0:1'"),
    (["sweep", "--grid", "lam_t=lin:0:1:0"], "grid field 'lam_t': cannot read"),
    (["sweep", "--grid", "lam_t=log:0:1:3"], "grid field 'lam_t': cannot read"),
    (["sweep", "--grid", "beta=1"], "grid field 'beta' is not a parameter"),
    (["sweep", "--grid", "rho=0.5,1.5"], "rho must be in (0.0, 1.0), got 1.5"),
    (["sweep", "--temperature", "2"], "give the grid with --grid"),
]


@pytest.mark.parametrize("argv,message", CLI_ERRORS, ids=[" ".join(a) for a, _ in CLI_ERRORS])
def test_cli_rejects_bad_flags_on_one_line_with_status_2(argv, message, capsys):
    code, err, out = run_cli(argv, capsys)
    assert code == 2 and out == "", (code, out)
    assert err.startswith("kdjax: error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_negative_numbers_are_parsed_as_values():
    args = build_parser().parse_args(["solve", "--delta", "-inf", "--rho", "-1e-3", "--lam-t", "-.5"])
    assert (args.delta, args.rho, args.lam_t) == (-math.inf, -1e-3, -0.5)


GRID_FILES = [
    ("grid.toml", "[grid]\nalpha = [1, 2\n", "grid.toml is not valid TOML"),
    ("grid.json", "{not json", "grid.json is not valid JSON"),
    ("grid.yaml", "alpha: [1, 2]", "grid.yaml is not valid JSON"),
    ("grid.json", "[1, 2]", "expected a table of parameter = values"),
    ("grid.json", '{"grid": {"alpha": [1]}, "delta": 2}', "unexpected field 'delta' next to 'grid'"),
    ("grid.json", '{"alpha": [1, true]}', "grid field 'alpha': expected a non-empty list of numbers, got True"),
    ("grid.json", '{"alpha": [1, "2"]}', "grid field 'alpha': expected a non-empty list of numbers, got '2'"),
    ("grid.json", '{"alpha": false}', "grid field 'alpha': expected a list of numbers or a string, got bool"),
    ("grid.toml", "[grid]\nalpha = []\n",
     "grid field 'alpha': expected a non-empty list of numbers, got an empty list"),
    ("grid.toml", "[grid]\nalpha = {lo = 1}\n", "grid field 'alpha': expected a list of numbers or a string, got dict"),
    ("grid.toml", 'alpha = "lin:1:2:x"\n', "grid field 'alpha': cannot read 'lin:1:2:x'"),
    ("grid.toml", "alpa = [1.0]\n", "grid field 'alpa' is not a parameter"),
    ("grid.toml", "delta = [1.0, -1.0]\n", "delta must be in (0.0, inf), got -1"),
    ("grid.json", b"\x80\x81", "grid.json is not UTF-8 text"),
    ("missing.toml", None, "cannot read grid file"),
]


@pytest.mark.parametrize("name,content,message", GRID_FILES, ids=[m for _, _, m in GRID_FILES])
def test_cli_rejects_malformed_grid_files_naming_the_field(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, err, out = run_cli(["sweep", "--grid-file", str(path)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, err)
    assert message in err, err


def test_cli_reproduce_rejects_an_output_folder_it_cannot_create(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err, _ = run_cli(["reproduce", "--quick", "--out", str(blocker / "results")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--out: cannot create folder" in err, err


# --------------------------------------------------------------------------- simulations, baselines, observables

SIM = dict(mixture=Mixture(2.0, 1.0), teacher=Teacher("logistic", 0.1))
SIM_ERRORS = [
    (dict(n_features=True), "n_features must be an integer >= 1, got True"),
    (dict(n_test=True), "n_test must be an integer >= 1, got True"),
    (dict(max_steps=True), "max_steps must be an integer >= 1, got True"),
    (dict(tol="x"), "tol must be a real number, got 'x'"),
    (dict(tol=1.5), "tol must be in (0.0, 1.0), got 1.5"),
    (dict(tol=np.array([1e-9, 1e-8])), "tol must be a single number"),
    (dict(seeds=True), "seeds must be an integer >= 1, got True"),
    (dict(seeds=0), "seeds must be an integer >= 1, got 0"),
    (dict(seeds=2.0), "seeds must be a count or a sequence of ints in [0, 2**32), got 2.0"),
    (dict(seeds=None), "seeds must be a count or a sequence of ints in [0, 2**32), got None"),
    (dict(seeds="abc"), "seeds must be a count or a sequence of ints in [0, 2**32), got 'abc'"),
    (dict(seeds="12"), "seeds must be a count or a sequence of ints in [0, 2**32), got '12'"),
    (dict(seeds=[1.5]), "seeds must be an integer >= 0, got 1.5"),
    (dict(seeds=[True]), "seeds must be an integer >= 0, got True"),
    (dict(seeds=np.array([0.0, 1.0])), "seeds must be an integer >= 0, got 0.0"),
    (dict(seeds=[-1]), "seeds must be an integer >= 0, got -1"),
    (dict(seeds=[]), "seeds must be a non-empty sequence of ints in [0, 2**32)"),
    (dict(seeds=[0, 2**32]), "seeds must be a non-empty sequence of ints in [0, 2**32)"),
    (dict(mixture=Mixture(np.array([1.0, 2.0]), 1.0)), "mixture must hold scalar values"),
    (dict(mixture=(2.0, 1.0)), "mixture must be a Mixture, got (2.0, 1.0)"),
    (dict(teacher=Student()), "teacher must be a Teacher, got Student("),
]


@pytest.mark.parametrize("change,message", SIM_ERRORS, ids=[m for _, m in SIM_ERRORS])
def test_simulate_teacher_rejects_bad_settings_by_name(change, message):
    args = {**SIM, "n_features": 8, "n_test": 10, **change}
    assert message in one_line_error(lambda: simulate_teacher(args.pop("mixture"), args.pop("teacher"), **args))


@pytest.mark.parametrize("args,message", [
    ((SIM["mixture"], SIM["teacher"], None), "student must be a Student, got None"),
    ((SIM["mixture"], Student(), SIM["teacher"]), "teacher must be a Teacher"),
    ((SIM["teacher"], SIM["mixture"], Student()), "mixture must be a Mixture"),
    ((SIM["mixture"], SIM["teacher"], Student(temperature=np.array([1.0, 2.0]))), "student must hold scalar values"),
])
def test_simulate_student_checks_its_parameter_objects(args, message):
    assert message in one_line_error(lambda: simulate_student(*args, n_features=8, seeds=[0]))


@pytest.mark.parametrize("args,message", [
    ((-1.0,), "delta must be in (0.0, inf), got -1"),
    ((0.0,), "delta must be in (0.0, inf), got 0"),
    ((1.0, 1.5), "rho must be in (0.0, 1.0), got 1.5"),
    ((1.0, 0.0), "rho must be in (0.0, 1.0), got 0"),
    (("1",), "delta must be a real number, got '1'"),
    ((np.array([1.0, -2.0]),), "delta must be in (0.0, inf), got -2"),
])
def test_separability_threshold_rejects_values_outside_its_domain(args, message):
    assert message in one_line_error(lambda: separability_threshold(*args))


@pytest.mark.parametrize("make", [lambda: bayes_optimal_error(None), lambda: bayes_optimal_overlaps((2, 1, 0.5))])
def test_bayes_baselines_require_a_mixture(make):
    assert "mixture must be a Mixture, got " in one_line_error(make)


GOOD_PAIR = dict(m_t=0.5, q_t=1.0, b_t=0.1, m_s=0.4, q_s=0.8, r=0.6, b_s=0.0, delta=1.0, rho=0.5)
OBSERVABLE_ERRORS = [
    (gen_error, dict(m=0.5, q=-1.0, b=0.0, delta=1.0, rho=0.5), "q must be in (0.0, inf), got -1"),
    (gen_error, dict(m=0.5, q=1.0, b=0.0, delta=1.0, rho=2.0), "rho must be in (0.0, 1.0), got 2"),
    (gen_error, dict(m=0.5, q=1.0, b=0.0, delta=0.0, rho=0.5), "delta must be in (0.0, inf), got 0"),
    (gen_error, dict(m="0.5", q=1.0, b=0.0, delta=1.0, rho=0.5), "m must be a real number, got '0.5'"),
    (gen_error, dict(m=0.5, q=1.0, b=np.nan, delta=1.0, rho=0.5), "b must be in (-inf, inf), got nan"),
    (agreement, {**GOOD_PAIR, "r": 1.0}, "r must satisfy r^2 <= q_t q_s (Cauchy-Schwarz), got r^2 = 1 > q_t q_s = 0.8"),
    (agreement, {**GOOD_PAIR, "r": np.array([0.5, -0.9])}, "r must satisfy r^2 <= q_t q_s"),
    (agreement, {**GOOD_PAIR, "q_s": 0.0}, "q_s must be in (0.0, inf), got 0"),
    (agreement, {**GOOD_PAIR, "rho": 1.0}, "rho must be in (0.0, 1.0), got 1"),
]


@pytest.mark.parametrize("fn,args,message", OBSERVABLE_ERRORS, ids=[m for _, _, m in OBSERVABLE_ERRORS])
def test_observables_reject_inputs_outside_their_domain(fn, args, message):
    assert message in one_line_error(lambda: fn(**args))


def test_observables_accept_the_cauchy_schwarz_boundary_and_stay_traceable():
    # identical classifiers (r^2 = q_t q_s up to round-off) agree exactly
    same = dict(m_t=0.5, q_t=0.3, b_t=0.1, m_s=0.5, q_s=0.3, r=0.3 * (1 + 1e-15), b_s=0.1, delta=1.0, rho=0.4)
    assert float(agreement(**same)) == 1.0
    # traced inputs skip the checks: jit, grad and vmap go through the public functions
    args = (0.5, 1.0, 0.1, 1.0, 0.3)
    assert float(jax.jit(gen_error)(*args)) == pytest.approx(float(gen_error(*args)))
    assert np.isfinite(float(jax.grad(gen_error, argnums=(1,))(0.5, 1.0, 0.1, 1.0, 0.3)[0]))
    pair = list(GOOD_PAIR.values())
    rs = jnp.asarray([0.2, 0.6])
    # vmap under jit: one compiled program (eager vmap dispatches ~150 batched ops, each compiled)
    batched = jax.jit(jax.vmap(lambda r: agreement(*pair[:5], r, *pair[6:])))(rs)
    assert np.allclose(batched, [float(agreement(**{**GOOD_PAIR, "r": float(r)})) for r in rs])
