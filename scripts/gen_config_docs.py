#!/usr/bin/env python3
"""Write the key references from the config schemas (detector/config/reference.py): docs/config.md
(the edge) and docs/centre-config.md (the management centre).

    .venv/bin/python scripts/gen_config_docs.py [--check]

--check writes nothing and exits 1 when a file differs from what its schema gives now.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.centre.config import CentreConfig  # noqa: E402
from detector.config.reference import CENTRE_HEADER, HEADER, render_markdown  # noqa: E402
from detector.config.schema import AppConfig  # noqa: E402

DOCS = {ROOT / "docs/config.md": (AppConfig, HEADER), ROOT / "docs/centre-config.md": (CentreConfig, CENTRE_HEADER)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale instead of writing it")
    args = parser.parse_args()
    stale = 0
    for doc, (model, header) in DOCS.items():
        text = render_markdown(model, header)
        if args.check:
            if not doc.is_file() or doc.read_text(encoding="utf-8") != text:
                print(f"{doc.relative_to(ROOT)} is stale: run scripts/gen_config_docs.py", file=sys.stderr)
                stale = 1
            continue
        doc.write_text(text, encoding="utf-8")
        print(f"wrote {doc.relative_to(ROOT)}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
