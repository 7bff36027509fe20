import jax
import pytest

import kdjax

jax.config.update("jax_enable_x64", True)

# Long-running modules and checks run with `pytest -m slow` (the default suite stays within the
# CI budget of 10 minutes on 2 cores).
SLOW_FILES = {
    "test_gradients.py", "test_embedding.py", "test_properties.py", "test_hard_regimes.py",
}
SLOW_TESTS = {
    "test_gradient_search_reaches_the_grid_optimum_with_fewer_solves",
    "test_balanced_teacher_is_best_at_infinite_ridge_where_it_is_bayes_optimal",
    # label noise: theory vs simulation and the gradient (also the `eta=` rows of `kdjax validate`)
    "test_noisy_teacher_and_student_agree_with_simulation",
    "test_error_is_differentiable_in_the_noise_level",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def solve_recording(fn, *args):
    """``(result, messages)``: the ``throw=False`` result of ``fn(*args)``, and the message of the
    ``kdjax.SolveError`` that ``throw=True`` raises (none when it succeeds)."""
    result = fn(*args, throw=False)
    try:
        fn(*args)
    except kdjax.SolveError as err:
        return result, [str(err)]
    return result, []
