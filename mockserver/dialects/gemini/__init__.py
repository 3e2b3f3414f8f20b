"""gemini: one protocol, one folder (see ``dialect.py``)."""

from mockserver.dialects.gemini.dialect import DIALECT

__all__ = ["DIALECT"]
