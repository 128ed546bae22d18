"""Model backends behind one async contract, selected by URI."""

from finegate.models.sync import generate_sync
from finegate.models.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    GenerationParams,
    LogprobBackend,
    ModelBackend,
    ModelIdentity,
    ToolCall,
    ToolSpec,
)
from finegate.models.uri import BackendOptions, load_backend, split_uri

__all__ = [
    "BackendOptions",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "GenerationParams",
    "LogprobBackend",
    "ModelBackend",
    "ModelIdentity",
    "ToolCall",
    "ToolSpec",
    "generate_sync",
    "load_backend",
    "split_uri",
]
