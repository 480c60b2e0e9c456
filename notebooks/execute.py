"""Executes a notebook in place with nbclient, writing its outputs and
figures: `python execute.py simulation.ipynb` (the size comes from
STRATA_NOTEBOOK_SIZE, "full" by default)."""

import pathlib
import sys

import nbformat
from nbclient import NotebookClient


def main(paths):
    for name in paths:
        path = pathlib.Path(name).resolve()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb,
            timeout=None,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        nbformat.write(nb, path)
        print(f"executed {path}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["simulation.ipynb"])
