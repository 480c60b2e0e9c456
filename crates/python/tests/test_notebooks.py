"""Every notebook in notebooks/ runs to the end at small sizes
(STRATA_NOTEBOOK_SIZE=small), so none can rot."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[3] / "notebooks"


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name
)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("STRATA_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("STRATA_FIGURES", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert figures, "the notebook made no figure"


def test_there_is_a_notebook():
    assert list(NOTEBOOKS.glob("*.ipynb"))
