"""Names the command line needs before anything else is loaded: where a deployment's configuration is, and the
electorates packaged with the product.

They live apart from `config` and `deployment` so that `voting --help` builds its parser without importing pydantic
or cryptography.
"""

from pathlib import Path

DEFAULT_CONFIG = Path("config/voting.toml")
TEMPLATES = ("unsc-2020", "eu-2026")
