# Only for what pyproject.toml cannot say: the top-level themes/ folder ships
# as the package awm_tui.themes, next to every package found under awm_tui/.
from setuptools import find_packages, setup

setup(packages=find_packages(include=["awm_tui", "awm_tui.*"]) + ["awm_tui.themes"])
