"""Label noise (MODEL.md, "Label noise"): every learner's hard labels flipped with probability eta,
errors measured against the clean label."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import kdjax
from kdjax import Mixture, Student, Teacher

FIELDS = ("gen_error", "m", "q", "b", "train_error", "train_loss")


@pytest.mark.parametrize("loss", ["logistic", "square", "hinge"])
def test_zero_noise_reproduces_the_clean_teacher(loss):
    """``eta = 0`` given as a traced number runs the four-row (noisy) averages: same numbers."""
    clean = kdjax.solve_teacher(Mixture(2.0, 1.0, 0.4), Teacher(loss, 0.1))
    noisy = jax.jit(lambda eta: kdjax.solve_teacher(Mixture(2.0, 1.0, 0.4, eta), Teacher(loss, 0.1)))(0.0)
    for f in FIELDS:
        assert abs(float(getattr(clean, f)) - float(getattr(noisy, f))) <= 1e-10, f


@pytest.mark.parametrize("student", [Student(0.5, 2.0, 0.3, 0.01), Student(0.7, 1.0, 0.2, 0.05, "fresh", 2.0)],
                         ids=["same", "fresh"])
def test_zero_noise_reproduces_the_clean_student(student):
    mix, teacher = Mixture(2.0, 1.0, 0.4), Teacher("logistic", 0.1)
    clean = kdjax.solve_student(mix, teacher, student)
    noisy = kdjax.solve_student(mix.replace(label_noise=jnp.asarray(0.0)), teacher, student)
    for f in FIELDS + ("r", "agreement"):
        assert abs(float(getattr(clean, f)) - float(getattr(noisy, f))) <= 1e-10, f


def test_noise_out_of_range_is_refused_by_name():
    for eta in (-0.1, 0.5, 0.7):
        with pytest.raises(ValueError, match=r"label_noise must be in \[0.0, 0.5\)"):
            Mixture(2.0, 1.0, label_noise=eta)


def _agrees(theory, sim, fields, allowance):
    mean, sem = sim.mean(), sim.sem()
    for f in fields:
        th, mu, se = float(getattr(theory, f)), float(getattr(mean, f)), float(getattr(sem, f))
        assert abs(th - mu) <= 3 * se + allowance * (abs(th) + 1), (f, th, mu, se)


@pytest.mark.slow  # also the `eta=` rows of `kdjax validate`
@pytest.mark.parametrize("data", ["same", "fresh"])
def test_noisy_teacher_and_student_agree_with_simulation(data):
    mix, teacher = Mixture(3.0, 1.0, 0.5, 0.2), Teacher("logistic", 0.1)
    student = Student(0.5, 2.0, 0.3, 0.01) if data == "same" else Student(0.5, 2.0, 0.3, 0.01, "fresh", 3.0)
    theory = kdjax.solve_student(mix, teacher, student)
    sim = kdjax.simulate_student(mix, teacher, student, n_features=600, seeds=6, n_test=4000)
    _agrees(theory.teacher, sim.teacher, ("m", "q", "b", "train_error"), 0.03)
    _agrees(theory, sim, ("m", "q", "r", "b", "train_error", "agreement"), 0.03)
    # the noise costs the teacher accuracy on clean test inputs
    clean = kdjax.solve_teacher(mix.replace(label_noise=0.0), teacher)
    assert float(theory.teacher.gen_error) > float(clean.gen_error) + 0.05


@pytest.mark.slow
def test_error_is_differentiable_in_the_noise_level():
    teacher, student = Teacher("logistic", 0.1), Student(0.5, 2.0, 0.3, 0.01)
    err = lambda eta: kdjax.solve_student(Mixture(2.0, 1.0, 0.5, eta), teacher, student).gen_error
    g = float(jax.grad(err)(0.1))
    h = 1e-5
    fd = (float(err(0.1 + h)) - float(err(0.1 - h))) / (2 * h)
    assert g > 0 and abs(g - fd) <= 1e-5 * (1 + abs(fd))
