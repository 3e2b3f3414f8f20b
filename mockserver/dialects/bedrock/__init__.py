"""bedrock: one protocol, one folder (see ``dialect.py``)."""

from mockserver.dialects.bedrock.dialect import DIALECT

__all__ = ["DIALECT"]
