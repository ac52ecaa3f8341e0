"""Performance benchmark of the reader and SAE: ``scope-guard bench``."""
