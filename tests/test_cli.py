"""The ``kdjax`` command (src/kdjax/cli.py): output contract and exit statuses."""

from __future__ import annotations

import json

import pytest

import kdjax
from kdjax.cli import main


def test_solve_json_prints_the_teacher_and_student_of_the_api(capsys):
    assert main(["solve", "--alpha", "2", "--lam-t", "0.1", "--gamma", "0.5", "--temperature", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    s = kdjax.solve_student(kdjax.Mixture(2.0, 1.0), kdjax.Teacher("logistic", 0.1), kdjax.Student(0.5, 2.0))
    assert payload["student"]["gen_error"] == pytest.approx(float(s.gen_error), rel=1e-12)
    assert payload["teacher"]["q"] == pytest.approx(float(s.teacher.q), rel=1e-12)
    assert payload["student"]["converged"] is True


@pytest.mark.parametrize("argv, text", [
    (["solve", "--alpha", "-1"], "alpha must be in"),
    (["solve", "--teacher-loss", "cubic"], "teacher loss must be one of"),
    (["solve", "--alpha", "2", "--lam-t", "0"], "no finite minimiser"),
    (["sweep", "--grid", "nope=1,2"], "is not a parameter"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, text, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err and err.startswith("kdjax: error:")



STUDENT = ["--gamma", "0.5", "--temperature", "2"]


@pytest.mark.parametrize("noise, student", [
    ([], STUDENT),
    (["--label-noise", "0.2"], []),  # teacher only: one compilation fewer (~10 s)
    pytest.param(["--label-noise", "0.2"], STUDENT, marks=pytest.mark.slow),
], ids=["clean-student", "noisy-teacher", "noisy-student"])
def test_solve_json_bayes_optimal_error_is_the_api_value_below_the_learners(noise, student, capsys):
    argv = ["solve", "--alpha", "2", "--delta", "1", "--rho", "0.3", "--lam-t", "0.1", "--json"]
    assert main(argv + student + noise) == 0
    payload = json.loads(capsys.readouterr().out)
    mixture = kdjax.Mixture(2.0, 1.0, 0.3, float(noise[1]) if noise else 0.0)
    assert mixture.noisy == bool(noise)
    bayes = payload["bayes_optimal_error"]
    assert bayes == pytest.approx(float(kdjax.bayes_optimal_error(mixture)), rel=1e-12)
    # the baseline of this (noisy) mixture, not of its clean copy
    clean = float(kdjax.bayes_optimal_error(kdjax.Mixture(2.0, 1.0, 0.3)))
    assert bayes > clean + 1e-3 if noise else bayes == clean
    # a lower bound for every learner printed next to it
    learners = [payload["teacher"]] + payload.get("generations", [])
    assert len(learners) == (2 if student else 1)
    assert all(bayes < learner["gen_error"] for learner in learners)


FRESH_1 = "gamma=1,temperature=2,hard_weight=0,lam_s=0.01,data=fresh,alpha_s=3"
FRESH_2 = "gamma=0.7,temperature=3,hard_weight=0.2,lam_s=0.02,data=fresh,alpha_s=2"
CHAIN_MODEL = ["--alpha", "2", "--lam-t", "0.05", "--label-noise", "0.1"]


def _chain_students(T2=3.0):
    return [kdjax.Student(1.0, 2.0, 0.0, 0.01, "fresh", 3.0), kdjax.Student(0.7, T2, 0.2, 0.02, "fresh", 2.0)]


def test_solve_json_of_a_chain_prints_every_generation_of_the_api(capsys):
    argv = ["solve", *CHAIN_MODEL, "--generation", FRESH_1, "--generation", FRESH_2, "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    chain = kdjax.solve_chain(kdjax.Mixture(2.0, 1.0, label_noise=0.1), kdjax.Teacher("logistic", 0.05),
                              _chain_students())
    assert len(payload["generations"]) == 2 and payload["student"] == payload["generations"][-1]
    assert payload["teacher"]["q"] == pytest.approx(float(chain.teacher.q), rel=1e-12)
    for printed, solved in zip(payload["generations"], chain.generations):
        for key in ("gen_error", "q", "r", "agreement"):
            assert printed[key] == pytest.approx(float(getattr(solved, key)), rel=1e-12), key


def test_sweep_grids_over_a_later_generation_and_the_label_noise(tmp_path):
    out = tmp_path / "sweep.json"
    argv = ["sweep", *CHAIN_MODEL, "--generation", FRESH_1, "--generation", FRESH_2,
            "--grid", "gen2.temperature=1,3", "--grid", "label_noise=0,0.1", "--format", "json", "--out", str(out)]
    assert main(argv) == 0
    table = json.loads(out.read_text())
    assert table["gen2.temperature"] == [1.0, 1.0, 3.0, 3.0] and table["label_noise"] == [0.0, 0.1, 0.0, 0.1]
    # the last point is the chain of the previous test: the same numbers as its solve
    chain = kdjax.solve_chain(kdjax.Mixture(2.0, 1.0, label_noise=0.1), kdjax.Teacher("logistic", 0.05),
                              _chain_students())
    assert table["gen2_gen_error"][3] == pytest.approx(float(chain.generations[1].gen_error), rel=1e-10)
    assert table["gen1_gen_error"][1] == pytest.approx(float(chain.generations[0].gen_error), rel=1e-10)
    assert len(set(table["gen2_gen_error"])) == 4  # every point is its own chain


@pytest.mark.parametrize("argv, text", [
    (["--generation", "gamma=0.5,temperature=2", "--generation", "gamma=0.7"],
     "gamma of generation 2 (0.7) must not exceed that of the previous generation (0.5)"),
    (["--generation", "gamma=0.5", "--generation", "gamma=0.4,temprature=2"], "--generation 2: must be KEY=VALUE"),
    (["--generation", "gamma=0.5,temperature=x"], "--generation 1: temperature must be a number"),
    (["--generation", "gamma=0.5,data=fresh"], "--generation 1: alpha_s"),
    (["--alpha", "0.5", "--lam-t", "0.1", "--generation", "gamma=1,lam_s=0.1", "--generation", "gamma=0.7,lam_s=0"],
     "no unique student minimiser (generation 2)"),
    (["--generation", "gamma=0.5", "--gamma", "0.5"], "either by --generation flags or by the single-student flags"),
])
def test_bad_chains_are_one_line_naming_the_generation(argv, text, capsys):
    assert main(["solve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err and err.startswith("kdjax: error:")
