"""bench: a comparative optimization benchmark suite for training neural networks."""

import os as _os

# In a source checkout, bench.optimizers and bench.datasets are the repository's top-level
# folders optimizers/ and datasets/ (an installed copy has them inside bench/, by setuptools'
# package-dir mapping); so they import the same way from a checkout, an editable install or a
# copy of the repository.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "optimizers")) and all(
    _os.path.isfile(_os.path.join(_root, name, "registry.py")) for name in ("optimizers", "datasets")
):
    __path__.append(_root)

__all__ = ["Results", "load", "register_dataset", "register_optimizer", "run", "tune"]


def __getattr__(name: str):
    # The API loads on first use, so ``import bench`` (and ``python -m bench --help``) stays light.
    if name in __all__:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
