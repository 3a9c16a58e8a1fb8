"""Packages found, not listed: every package under the four top-level folders, installed as torchtui.<folder>.

The folder-to-namespace mapping is `package-dir` in pyproject.toml; the rest of the metadata is there too.
"""

from setuptools import find_packages, setup

setup(packages=[f"torchtui.{name}" for name in find_packages(include=["engine*", "tui*", "cli*", "presets*"])])
