"""Icons, style sheets and shipped texts, found through the package so a packaged build finds them too."""

from pathlib import Path

RESOURCE_DIR = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    return RESOURCE_DIR / name
