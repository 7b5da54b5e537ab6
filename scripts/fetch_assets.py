#!/usr/bin/env python3
"""Place the model weights and clips listed in assets.yaml, verifying sha256.

    python scripts/fetch_assets.py [--mirror DIR] [--only PREFIX ...]

For each asset, the first source that yields the right bytes wins: the file already in place,
the mirror folder (default: ../shared/assets when it exists), a Debian package (apt-get
download, needs root or a readable apt cache), the upstream URL. Nothing is fetched at run time.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = ROOT.parent / "shared" / "assets"


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def from_mirror(asset: dict, mirror: Path | None, target: Path) -> str | None:
    source = mirror / asset["mirror"] if mirror and "mirror" in asset else None
    if source is None or not source.is_file():
        return None
    shutil.copyfile(source, target)
    return f"mirror {source}"


def from_debian(asset: dict, mirror: Path | None, target: Path) -> str | None:
    spec = asset.get("debian")
    if not spec or not shutil.which("apt-get"):
        return None
    with tempfile.TemporaryDirectory() as work:
        fetched = subprocess.run(["apt-get", "download", spec["package"]], cwd=work, capture_output=True, text=True)
        debs = list(Path(work).glob("*.deb"))
        if fetched.returncode or not debs:
            return None
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {work} ./{spec['member']}",
            shell=True,
            capture_output=True,
            text=True,
        )
        extracted = Path(work) / spec["member"]
        if tar.returncode or not extracted.is_file():
            return None
        shutil.copyfile(extracted, target)
    return f"Debian package {spec['package']}"


def from_url(asset: dict, mirror: Path | None, target: Path) -> str | None:
    if "url" not in asset:
        return None
    try:
        with urllib.request.urlopen(asset["url"], timeout=60) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError:
        return None
    return asset["url"]


def fetch(asset: dict, mirror: Path | None) -> str:
    dest = ROOT / asset["dest"]
    if dest.is_file() and sha256_of(dest) == asset["sha256"]:
        return "already in place"
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    tried = []
    for source in (from_mirror, from_debian, from_url):
        origin = source(asset, mirror, partial)
        if origin is None:
            continue
        if sha256_of(partial) == asset["sha256"]:
            partial.replace(dest)
            return f"from {origin}"
        tried.append(f"{origin}: sha256 mismatch")
    partial.unlink(missing_ok=True)
    raise RuntimeError("; ".join(tried) or "no source reachable (give --mirror DIR)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR if DEFAULT_MIRROR.is_dir() else None)
    parser.add_argument("--only", nargs="*", default=[], help="fetch only assets whose dest starts with one of these")
    args = parser.parse_args()
    assets = yaml.safe_load((ROOT / "assets.yaml").read_text())
    failed = 0
    for asset in assets:
        if args.only and not any(asset["dest"].startswith(p) for p in args.only):
            continue
        try:
            print(f"{asset['dest']}: {fetch(asset, args.mirror)}")
        except RuntimeError as exc:
            level = "skipped (optional)" if asset.get("optional") else "FAILED"
            failed += not asset.get("optional")
            print(f"{asset['dest']}: {level}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
