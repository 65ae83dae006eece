"""Execute notebooks in place, as nbval will re-execute them, and save outputs.

    .venv/bin/python tools/execute_notebooks.py chapters/en/01_*.ipynb chapters/zh/01_*.ipynb

Each notebook runs in a fresh kernel of this environment with its own folder
as the working directory; execution timing metadata is stripped and consecutive
printed chunks are joined, so that diffs stay small.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def merge_streams(outputs):
    """Join consecutive stdout (or stderr) chunks into one output, as nbval compares them:
    how the kernel happened to split a cell's printing then never shows up in a diff."""
    merged = []
    for out in outputs:
        if (
            out.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1]["name"] == out["name"]
        ):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def execute(path):
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    nbformat.write(nb, path)
    print(f"executed {path}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        execute(p)
