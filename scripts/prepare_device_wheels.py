"""Download the wheels that `make gpu-check` installs on a bare GPU machine into .whl/ (docs/gpu.md).

A GPU machine may come with torch (CUDA build) but without opacus or faker, or with other versions of
transformers and peft than the ones the toolkit is tested with here. This script downloads, for the
machine's Python (CPython 3.12, manylinux x86_64 by default), the wheels of :data:`CARRY` at the versions
installed in the Python that runs it (the tested stack; ``--pin NAME==VERSION`` to override), without their
dependencies (``--no-deps``: each carried package's needs are either carried too or already on such a
machine — :data:`NOT_CARRIED` says why the others are left out). torch is never carried: the machine's own
CUDA build is used.

It also writes ``.whl/SOURCE.json`` (git commit, dirty flag, date, versions): a copy of the working tree on
another machine may have no git, and ``lowrankdp gpu-check`` records this commit instead.

    .venv/bin/python scripts/prepare_device_wheels.py            # or: make device-wheels
    .venv/bin/python scripts/prepare_device_wheels.py --dry-run  # print the pip commands only

``scripts/gpu_check.sh`` installs every ``.whl/*.whl`` with ``pip install --no-index --no-deps --target``
and puts that folder first on ``PYTHONPATH``. The total is checked against ``--max-mib`` (default 48 MiB,
leaving room for the working tree under a 64 MiB transfer limit).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: distribution names carried to the GPU machine
CARRY = ("transformers", "tokenizers", "peft", "opacus", "faker", "regex")
#: deliberately not carried, and why
NOT_CARRIED = {
    "torch": "the machine's CUDA build is used (a CPU wheel would hide the GPU; a CUDA wheel is gigabytes)",
    "huggingface-hub": "transformers needs >=1.31 (such machines have it); newer hubs pull httpx2 and click",
    "accelerate": "peft needs >=0.21 and transformers >=1.1; such machines have it",
    "dp-accounting": "only the PLD accountant uses it; the check uses RDP",
    "safetensors": "transformers needs >=0.8.0; such machines have it",
}
PLATFORMS = tuple(f"manylinux_2_{n}_x86_64" for n in (39, 35, 34, 31, 28, 27, 24, 17)) + (
    "manylinux2014_x86_64", "manylinux1_x86_64")


def pins(overrides: list[str]) -> dict[str, str]:
    """``{name: version}``: the installed version of every :data:`CARRY` package, then ``overrides``."""
    out: dict[str, str] = {}
    for name in CARRY:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(f"{name} is not installed in {sys.executable}; install the project first "
                             f"(make install) or pass --pin {name}==VERSION") from None
    for o in overrides:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", o)
        if m is None:
            raise ValueError(f"--pin must look like NAME==VERSION, got {o!r}")
        name = m.group(1).lower().replace("_", "-")
        if name == "torch":
            raise ValueError("--pin torch: torch is never carried (the machine's CUDA build is used)")
        out[name] = m.group(2)
    return out


def download_command(pinned: dict[str, str], *, dest: Path, python_version: str) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    return cmd + [f"{n}=={v}" for n, v in sorted(pinned.items())]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def check_folder(dest: Path, pinned: dict[str, str], *, max_mib: float) -> list[str]:
    """Problems with ``dest``: a pinned package without exactly one wheel, or a total over ``max_mib``."""
    problems = []
    wheels = sorted(dest.glob("*.whl"))
    for name in pinned:
        mine = [w for w in wheels if _norm(w.name.split("-")[0]) == _norm(name)]
        if len(mine) != 1:
            problems.append(f"{name}: {len(mine)} wheels in {dest} (need exactly one)")
    total = sum(w.stat().st_size for w in wheels) / 2**20
    if total > max_mib:
        problems.append(f"wheels total {total:.1f} MiB > --max-mib {max_mib:g}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", default=str(ROOT / ".whl"))
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default %(default)s)")
    ap.add_argument("--pin", action="append", default=[], metavar="NAME==VERSION")
    ap.add_argument("--max-mib", type=float, default=48.0)
    ap.add_argument("--dry-run", action="store_true", help="print what would be downloaded, download nothing")
    args = ap.parse_args(argv)
    try:
        pinned = pins(args.pin)
    except ValueError as exc:
        print(f"prepare_device_wheels: error: {exc}", file=sys.stderr)
        return 2
    dest = Path(args.dest)
    cmd = download_command(pinned, dest=dest, python_version=args.python_version)
    if args.dry_run:
        print(json.dumps({"pins": pinned, "command": cmd, "not_carried": NOT_CARRIED}, indent=2))
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    for w in dest.glob("*.whl"):  # one version of each: two would stop the whole install
        w.unlink()
    res = subprocess.run(cmd)
    if res.returncode != 0:
        print("prepare_device_wheels: error: pip download failed (see above)", file=sys.stderr)
        return 1
    problems = check_folder(dest, pinned, max_mib=args.max_mib)
    sys.path.insert(0, str(ROOT))
    from lowrankdp.provenance import git_state

    (dest / "SOURCE.json").write_text(json.dumps({
        **git_state(ROOT), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pins": pinned, "python_version": args.python_version,
        "wheels": sorted(w.name for w in dest.glob("*.whl"))}, indent=2) + "\n")
    total = sum(w.stat().st_size for w in dest.glob("*.whl")) / 2**20
    for p in problems:
        print(f"prepare_device_wheels: error: {p}", file=sys.stderr)
    print(f"{len(list(dest.glob('*.whl')))} wheels, {total:.1f} MiB in {dest}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
