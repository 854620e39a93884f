"""The Space: where the app's files live in a checkout, whether we run on a Space, and its app.py as a module."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from ..errors import ConfigurationError


def repo_root() -> Path:
    """The source checkout holding setup.py and space/ (publishing works from a checkout, not an install).

    Returns:
        The folder above the ``ecco_sdk`` package.
    """
    return Path(__file__).resolve().parents[2]


def default_space_dir() -> Path:
    """The repository's space/ folder, the source of the Space's files.

    Returns:
        ``repo_root() / "space"`` (it may not exist in an installed copy).
    """
    return repo_root() / "space"


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """Whether the app runs on a Hugging Face Space (which sets SPACE_ID).

    Args:
        env: the environment to read (default: ``os.environ``).

    Returns:
        True when SPACE_ID is set and not empty.
    """
    return bool((os.environ if env is None else env).get("SPACE_ID"))


def load_app() -> ModuleType:
    """The repository's space/app.py as a module (it is the Space's entry file, not part of the package).

    Returns:
        The executed module, with ``build_app`` and ``main``.

    Raises:
        ConfigurationError: space/app.py is not there (an installed copy has no space/ folder).
    """
    path = default_space_dir() / "app.py"
    if not path.exists():
        raise ConfigurationError(f"the app lives in the repository's space/ folder, not found at {path}")
    spec = importlib.util.spec_from_file_location("ecco_space_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
