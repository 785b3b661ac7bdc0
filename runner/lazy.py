"""A package's names imported on first use (PEP 562), so that importing the package is cheap.

A package lists each exported name with the module that defines it and binds::

    __getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str], names: Sequence[str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` (imports ``where[name]`` once, then keeps the value in ``namespace``)
    and ``__dir__``."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
