"""Imports every domain's models so that `Base.metadata` describes the whole schema."""

from engine.registry import models as registry_models
from engine.sessions import models as sessions_models
from engine.store.base import Base
from engine.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = ["metadata", "registry_models", "sessions_models", "webhooks_models"]
