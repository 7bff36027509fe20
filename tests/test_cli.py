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
