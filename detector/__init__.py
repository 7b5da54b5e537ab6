"""detector: violation detection for city surveillance feeds.

    source -> sampler -> model -> tracker -> zones -> rules -> debouncer -> alerts -> sinks

See README.md for the commands and docs/ for the violation semantics and contracts.
"""

__version__ = "0.1.0"
