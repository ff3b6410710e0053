"""What git stores of a notebook: the text after the clean filter `make lab-filter` configures
(nbstripout, for notebooks/*.ipynb per .gitattributes), or the text itself without one."""

import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def clean_filter(repo_path: str) -> str | None:
    """The clean command git applies to `repo_path` (relative to the repository), or None."""
    try:
        attr = _git("check-attr", "filter", "--", repo_path)
    except FileNotFoundError:  # no git
        return None
    name = attr.stdout.rsplit(": ", 1)[-1].strip() if attr.returncode == 0 else ""
    if name in ("", "unspecified", "unset", "set"):
        return None
    command = _git("config", f"filter.{name}.clean")
    return command.stdout.strip() if command.returncode == 0 and command.stdout.strip() else None


def as_committed(text: str, repo_path: str) -> str:
    """`text` as `git add` would store it at `repo_path`."""
    command = clean_filter(repo_path)
    if command is None:
        return text
    return subprocess.run(shlex.split(command), input=text, capture_output=True, text=True, cwd=ROOT,
                          check=True).stdout
