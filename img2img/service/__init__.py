"""The app's library layer: everything `app.py` does but draw the page (`translation`)."""
from .translation import ModelShelf, ServiceError, TranslationService

__all__ = ["ModelShelf", "ServiceError", "TranslationService"]
