"""ollama: one protocol, one folder (see ``dialect.py``)."""

from mockserver.dialects.ollama.dialect import DIALECT

__all__ = ["DIALECT"]
