"""Placeholder: filled in by the function-library work."""

__all__: list[str] = []
