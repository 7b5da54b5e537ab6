"""Alert ids: time-ordered and unique across runs and machines (UUIDv7, RFC 9562 layout;
Python 3.11's uuid module has no uuid7 yet)."""

import os
import time
import uuid


def new_alert_id() -> str:
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80 | random
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
