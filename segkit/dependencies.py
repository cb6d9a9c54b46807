"""Third-party distributions whose release or licence matters, checked as installed (standard library only).

albumentations: segkit's augmentation plumbing (Compose, the DualTransform/ImageOnlyTransform base
classes, HorizontalFlip, Lambda, ToTensorV2) needs 2.0.1+ (`albumentations.core.type_definitions`,
the transforms' own `py_random`). Its repository was archived in July 2025: 2.0.8 is the last MIT
release. The successor, AlbumentationsX (distribution `albumentationsx`), installs the same
`albumentations` module under the AGPL-3.0, so `import albumentations` alone cannot tell them apart;
the installed distributions can. pyproject.toml pins the same range (a test checks they agree).
"""

from __future__ import annotations

import importlib.metadata
import re

ALBUMENTATIONS_RANGE = ("2.0.1", "2.0.8")  # inclusive: the first with what segkit uses, the last MIT release
ALBUMENTATIONS_PIN = f"albumentations>={ALBUMENTATIONS_RANGE[0]},<={ALBUMENTATIONS_RANGE[1]}"


def _release(version: str) -> tuple[int, ...]:
    """(2, 0, 8) of "2.0.8" / "2.0.8.post1"; what a comparison of releases needs."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def installed_versions(path: list[str] | None = None) -> dict[str, str]:
    """Normalised distribution name -> version, of the environment (or of the folders `path`)."""
    found = {}
    for dist in importlib.metadata.distributions(**({"path": path} if path is not None else {})):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return found


def albumentations_problem(path: list[str] | None = None) -> str | None:
    """What is wrong with the installed albumentations, with the fix; None when it is the MIT line.

    Args:
        path: Folders to look in instead of `sys.path` (tests).
    """
    versions = installed_versions(path)
    fix = f"pip uninstall -y albumentationsx && pip install '{ALBUMENTATIONS_PIN}'"
    if "albumentationsx" in versions:
        return (
            f"AlbumentationsX {versions['albumentationsx']} is installed: it provides the `albumentations` "
            "module under the AGPL-3.0 (the MIT albumentations ended with 2.0.8, July 2025), and segkit is "
            f"tested with albumentations {ALBUMENTATIONS_RANGE[0]}-{ALBUMENTATIONS_RANGE[1]}. Fix: {fix} "
            "(or keep it knowingly, under the AGPL-3.0's terms)"
        )
    version = versions.get("albumentations")
    if version is None:
        return (
            f"albumentations is not installed; segkit's augmentations need it. Fix: pip install '{ALBUMENTATIONS_PIN}'"
        )
    low, high = (_release(v) for v in ALBUMENTATIONS_RANGE)
    if not low <= _release(version) <= high:
        return (
            f"albumentations {version} is installed; segkit needs {ALBUMENTATIONS_RANGE[0]}-{ALBUMENTATIONS_RANGE[1]} "
            f"(2.0.1 added what it uses; 2.0.8 is the last MIT release). Fix: pip install '{ALBUMENTATIONS_PIN}'"
        )
    return None
