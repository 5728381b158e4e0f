"""Recipes: the five seed experiments as declarative TOML files, and the runner.

``digitnet reproduce NAME`` runs one (see :mod:`digitnet.recipes.cli`); in Python::

    from digitnet.recipes import run_recipe
    print(run_recipe("seed-002", "improved").line())
"""

from .runner import Recipe, Result, build_model, load_recipe, recipe_names, run_recipe

__all__ = ["Recipe", "Result", "build_model", "load_recipe", "recipe_names", "run_recipe"]
