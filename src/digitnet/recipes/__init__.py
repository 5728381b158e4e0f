"""Recipes: run specs as TOML files (the five seed experiments among them) and the runner
that compares a seed's recipe with what the seed reported.

``digitnet reproduce NAME`` runs one (see :mod:`digitnet.commands.reproduce`); in Python::

    from digitnet.recipes import run_recipe
    result, run = run_recipe("seed-002", "improved", out="runs/seed-002")
    print(result.line())
"""

from .runner import Recipe, Result, load_recipe, merge_improved, recipe_names, run_recipe

__all__ = ["Recipe", "Result", "load_recipe", "merge_improved", "recipe_names", "run_recipe"]
