"""Session settings shared by tests/ and the notebooks nbval runs (`make test`).

The notebooks read their profile and folders from the environment (their
`parameters` cell); here the whole session gets the `ci` profile and a temporary
results and data folder, so running the tests never writes into the repository.
tests/test_notebooks.py runs `agit reproduce --profile ci` into the same folders,
so the nbval pass that follows reuses its trained runs.
"""

import os
import shutil
import tempfile

_SAVED: dict = {}
_CREATED: list = []


def pytest_configure(config):
    base = tempfile.mkdtemp(prefix="agit-tests-")
    _CREATED.append(base)
    settings = {"AGIT_PROFILE": "ci", "AGIT_RESULTS": os.path.join(base, "results", "ci"),
                "AGIT_DATA": os.path.join(base, "data")}
    for key, value in settings.items():
        _SAVED[key] = os.environ.get(key)
        os.environ[key] = value


def pytest_report_header(config):
    """Say which of the user's settings the session replaces (e.g. AGIT_PROFILE=quick -> ci)."""
    return "agit: this session uses " + ", ".join(
        f"{key}={os.environ[key]}" + (f" (yours, {_SAVED[key]}, is restored after)" if _SAVED[key] else "")
        for key in _SAVED)


def pytest_unconfigure(config):
    for key, value in _SAVED.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for base in _CREATED:
        shutil.rmtree(base, ignore_errors=True)
