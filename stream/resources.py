"""Where the page (web/) and the presets (configs/) are: inside the installed package (the
wheel carries them as stream/web and stream/configs, mapped from the repository's top-level
folders by pyproject.toml), or at the top of the checkout when running from source (an
editable install included)."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def folder(name: str) -> Path:
    """'web' or 'configs' as a real folder on disk."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
