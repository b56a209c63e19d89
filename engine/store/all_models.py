"""Imports every domain's models so that `Base.metadata` describes the whole schema."""

from engine.registry import models as registry_models
from engine.store.base import Base

metadata = Base.metadata

__all__ = ["metadata", "registry_models"]
