"""The per-room event ingest pipeline, local event creation and state calculation.

See `pipeline.py` for the path every event takes; `docs/architecture.md` for the seams.
"""
