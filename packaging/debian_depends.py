"""The .deb's Depends line, read off the bundle: every shared library its ELF files need that the bundle does not
carry, mapped to the Debian package that ships it on this (the build) system, with the glibc version the bundle
needs. Also prints that glibc version, which is the oldest distribution the tarball runs on.

    python3 packaging/debian_depends.py BUNDLE_DIR [--extra PACKAGE ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

GLIBC_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
                   "ld-linux-x86-64.so.2", "libresolv.so.2", "libcrypt.so.1"}


def elf_files(bundle: Path) -> list[Path]:
    files = []
    for path in sorted(bundle.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    files.append(path)
    return files


def needed_and_glibc(path: Path) -> tuple[set[str], tuple[int, ...]]:
    dynamic = subprocess.run(["readelf", "-dW", str(path)], capture_output=True, text=True).stdout
    versions = subprocess.run(["readelf", "-VW", str(path)], capture_output=True, text=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    glibc = [tuple(int(part) for part in found.split(".")) for found in re.findall(r"Name: GLIBC_([0-9.]+)", versions)]
    return needed, max(glibc, default=(0,))


def system_library_paths() -> dict[str, str]:
    """soname -> path, from the dynamic linker's cache (64-bit entries only)."""
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths: dict[str, str] = {}
    for name, flags, path in re.findall(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", listing, re.MULTILINE):
        if "x86-64" in flags:
            paths.setdefault(name, path)
    return paths


def owning_package(path: str) -> str | None:
    candidates = {path, str(Path(path).resolve())}
    candidates |= {candidate.removeprefix("/usr") for candidate in list(candidates)}
    candidates |= {"/usr" + candidate for candidate in list(candidates) if not candidate.startswith("/usr")}
    for candidate in sorted(candidates):
        found = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.split(":", 1)[0].strip()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="a package the bundle needs at run time "
                                                                      "without linking to it (fonts, say)")
    parser.add_argument("--glibc-only", action="store_true", help="print only the glibc version needed")
    args = parser.parse_args()

    carried = {path.name for path in args.bundle.rglob("*.so*")}
    needed: set[str] = set()
    glibc: tuple[int, ...] = (0,)
    for path in elf_files(args.bundle):
        names, version = needed_and_glibc(path)
        needed |= names
        glibc = max(glibc, version)
    glibc_text = ".".join(map(str, glibc))
    if args.glibc_only:
        print(glibc_text)
        return 0

    system = system_library_paths()
    packages = {"libc6": f"libc6 (>= {glibc_text})"}
    missing = []
    for soname in sorted(needed - carried - GLIBC_LIBRARIES):
        package = owning_package(system[soname]) if soname in system else None
        if package is None:
            missing.append(soname)
        else:
            packages.setdefault(package, package)
    if missing:
        print(f"error: the bundle needs {', '.join(missing)}, which no installed Debian package provides on this "
              "build machine; install the packages that ship them and build again.", file=sys.stderr)
        return 1
    for extra in args.extra:
        packages.setdefault(extra, extra)
    print(", ".join(packages[name] for name in sorted(packages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
