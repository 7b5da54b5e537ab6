"""The errors a user can cause, mapped at the boundary from cv2/onnxruntime/PyAV/paho failures.

    DetectorError            anything the CLI reports as one line and a non-zero exit
    ├── ConfigError          bad YAML, unknown keys, wrong types, missing files or variables
    ├── SourceError          a video that is missing, corrupt or cannot be decoded
    ├── ModelError           a model file that is missing, truncated or of an unknown layout
    └── PublishError         a sink that cannot deliver (broker refusing credentials, ...)

Messages name the cause (a key path, a file) and never contain secrets: URLs pass through
`redact_url` before they are put in a message.
"""

import re


class DetectorError(Exception):
    """Base of every error the command line reports without a traceback."""

    exit_code = 1


class ConfigError(DetectorError):
    exit_code = 2


class SourceError(DetectorError):
    exit_code = 3


class ModelError(DetectorError):
    exit_code = 4


class PublishError(DetectorError):
    exit_code = 5


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def redact_url(text: str) -> str:
    """Replace the user:password part of every URL in `text` with `***`."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)
