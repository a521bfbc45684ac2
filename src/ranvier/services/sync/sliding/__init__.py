"""Simplified sliding sync (MSC4186): service.py is the entry point."""
