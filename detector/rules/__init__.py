"""Violation rules: roles, one class per violation type (violations.py, the registry), the
per-zone state machine (debounce.py) and the engine that runs them for one camera (engine.py).

Import the submodules directly: the config schema imports the registry, so this package's
top level stays free of imports that would need the config first.
"""
