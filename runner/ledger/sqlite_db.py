"""sqlite-utils' ``Database``, imported without pandas and numpy.

sqlite-utils imports pandas and numpy when they are installed (``datasets``, for the Hugging Face
export, brings both) only to map their value types to column types; the ledger stores neither.
That import cost every command opening a ledger 0.5-1.5 s of CPU at start-up (pandas pulls in
pyarrow). Here they are hidden while sqlite-utils is imported, and only then: a later
``import pandas`` (the export) works as usual.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

__all__ = ["Database"]


def _load() -> Any:
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` fails at once: sqlite-utils skips it
    try:
        from sqlite_utils import Database as loaded
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return loaded


if TYPE_CHECKING:
    from sqlite_utils import Database
else:
    Database = _load()
