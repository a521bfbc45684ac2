"""Typed, validated configuration.

`load.load_config(paths, env)` reads and validates YAML layers into the frozen dataclasses of
`schema.py`; `sample.generate_config(...)` writes the commented homeserver.yaml that
`ranvier init` installs. Problems surface as one `errors.ConfigError` listing all of them.
"""
