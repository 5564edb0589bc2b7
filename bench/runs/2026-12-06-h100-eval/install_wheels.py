"""Installs the carried wheels whose distributions the GPU machine lacks (offline, no deps:
what it has stays as it is)."""
import importlib.metadata as md
import pathlib
import subprocess
import sys

wheels = sorted(pathlib.Path(__file__).parent.joinpath("wheels").glob("*.whl"))
missing = []
for w in wheels:
    name = w.name.split("-")[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(str(w))
print("installing", [pathlib.Path(m).name.split("-")[0] for m in missing], flush=True)
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *missing], check=True)
