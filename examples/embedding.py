"""kdjax solves inside a larger JAX program: jit(grad(...)) of a user objective.

The objective trades the student's test error against its disagreement with the teacher,
averaged over two data regimes (two alphas), as a function of the temperature; both fixed
points of every solve are differentiated implicitly.  Run: python examples/embedding.py
"""

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import kdjax  # noqa: E402


def tradeoff(log_T, weight=0.5):
    """mean over alpha in {1.5, 3} of  eps_student + weight * (1 - agreement)."""
    T = jnp.exp(log_T)
    total = 0.0
    for alpha in (1.5, 3.0):
        s = kdjax.solve_student(
            kdjax.Mixture(alpha, 1.0), kdjax.Teacher("logistic", 0.05),
            kdjax.Student(gamma=0.5, temperature=T, hard_weight=0.2, lam=0.01),
        )
        total = total + s.gen_error + weight * (1.0 - s.agreement)
    return total / 2


value_and_grad = jax.jit(jax.value_and_grad(tradeoff))

if __name__ == "__main__":
    log_T = jnp.log(1.0)
    for step in range(15):
        value, g = value_and_grad(log_T)
        print(f"step {step:2d}  T = {float(jnp.exp(log_T)):.4f}  objective = {float(value):.6f}")
        log_T = log_T - 2.0 * g
