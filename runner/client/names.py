"""The provider's names a command shows before it talks to anyone: the key's and the base URL's variables, the default URL.

Apart from :mod:`runner.client.connection` (which imports httpx) so that ``--help`` need not import it.
"""

from __future__ import annotations

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL"]

API_KEY_ENV = "NOVITA_API_KEY"
BASE_URL_ENV = "NOVITA_BASE_URL"
DEFAULT_BASE_URL = "https://api.novita.ai"
