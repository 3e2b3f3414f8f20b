"""OpenAI's four protocols, in one folder since they share the error shape, the routes
(Azure's included), ids and headers (``common``) and the chunk-stream state machine
(``stream_check``): Chat Completions, legacy Completions, Embeddings and Responses."""

from mockserver.dialects.openai.chat import DIALECT as CHAT
from mockserver.dialects.openai.completions import DIALECT as COMPLETIONS
from mockserver.dialects.openai.embeddings import DIALECT as EMBEDDINGS
from mockserver.dialects.openai.responses import DIALECT as RESPONSES

__all__ = ["CHAT", "COMPLETIONS", "EMBEDDINGS", "RESPONSES"]
