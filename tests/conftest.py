import jax

import kdjax

# The one place for test settings: every test runs in double precision.  Long-running modules and
# checks carry `pytest.mark.slow` (module-level `pytestmark` or a decorator); pyproject deselects
# them by default (`pytest -m slow` runs them), so the default suite stays within the CI budget of
# 10 minutes on 2 cores.
jax.config.update("jax_enable_x64", True)


def solve_recording(fn, *args):
    """``(result, messages)``: the ``throw=False`` result of ``fn(*args)``, and the message of the
    ``kdjax.SolveError`` that ``throw=True`` raises (none when it succeeds)."""
    result = fn(*args, throw=False)
    try:
        fn(*args)
    except kdjax.SolveError as err:
        return result, [str(err)]
    return result, []
