"""One docstring convention across the package (the reference pages are built from them).

The ``>>>`` examples in the docstrings are shown in the package reference, so they must be true:
they run here. And the book's starting notebooks are named as such (seed NNN, with the chapter
that uses them), never as "the seed".
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import pytest

import quantbook
import quantbook.explorers

NOT_REFERENCE = {"quantbook.exercises"}  # hints and answers, not an API
MODULES = sorted(
    info.name
    for package in (quantbook, quantbook.explorers)
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
    if not info.name.split(".")[-1].startswith("_") and info.name not in NOT_REFERENCE
) + ["quantbook.explorers"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_are_true(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_the_seeds_are_named_with_their_chapter(name):
    """A docstring that mentions a starting notebook says which one and where it is used."""
    source = inspect.getsource(importlib.import_module(name))
    vague = re.findall(r"(?i)\bthe seeds?(?:'s)?\b(?! ?\d)", source)
    assert not vague, f"{name}: say 'the book's starting notebooks (seed NNN, chapter N)'"
