"""Integrations with other libraries' loading and training paths (transformers first)."""
