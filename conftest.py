"""Root conftest: hypothesis profiles. The options, markers and fixtures live in the semphase
pytest plugin (semphase/pytest_plugin.py, registered through the pytest11 entry point), so
that `pytest` finds them from any folder."""
import os

from hypothesis import HealthCheck, settings

# Hypothesis loads its own `ci` profile when CI is set; `dev` is the default elsewhere.
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
if not os.environ.get("CI"):
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
