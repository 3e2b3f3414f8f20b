"""anthropic: one protocol, one folder (see ``dialect.py``)."""

from mockserver.dialects.anthropic.dialect import DIALECT

__all__ = ["DIALECT"]
