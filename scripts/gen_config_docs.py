#!/usr/bin/env python3
"""Write docs/config.md, the key reference, from the config schema (detector/config/reference.py).

    .venv/bin/python scripts/gen_config_docs.py [--check]

--check writes nothing and exits 1 when the file differs from what the schema gives now.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.config.reference import render_markdown  # noqa: E402

DOC = ROOT / "docs/config.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is stale instead of writing it")
    args = parser.parse_args()
    text = render_markdown()
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
