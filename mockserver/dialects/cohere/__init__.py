"""cohere: one protocol, one folder (see ``dialect.py``)."""

from mockserver.dialects.cohere.dialect import DIALECT

__all__ = ["DIALECT"]
