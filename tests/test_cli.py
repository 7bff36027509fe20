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
