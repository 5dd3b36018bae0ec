"""``python -m cellbench`` anywhere, and ``python -m bench`` from a checkout (whose ``bench/`` is ``cellbench``)."""

import importlib.util
import sys
from pathlib import Path


def _checked_checkout() -> None:
    """Run as ``python -m bench``: refuse to run another copy of cellbench than this checkout's, naming both."""
    here = Path(__file__).resolve().parent
    spec = importlib.util.find_spec("cellbench")
    if spec is None or spec.origin is None:
        sys.exit(
            f"error: cellbench is not installed in this Python ({sys.executable}); "
            f"install this checkout with `python -m pip install -e {here.parent}`"
        )
    installed = Path(spec.origin).resolve().parent
    if installed != here:
        sys.exit(
            f"error: `python -m bench` in {here.parent} would run the cellbench installed from {installed}; "
            f"install this checkout (`python -m pip install -e {here.parent}`) or run `cellbench` for the installed one"
        )


if __package__ != "cellbench":
    _checked_checkout()

from cellbench.tools.cli import main  # noqa: E402  (after the check above)

sys.exit(main())
