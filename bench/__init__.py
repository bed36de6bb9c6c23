"""Benchmarks of eLicence and their last results (bench/RESULTS.md): run ``python -m bench.run``.

Not part of the installed package: the modules import the libraries and the scenario of
:mod:`elicence.scenario` and time them (see :mod:`bench.run`).
"""

__all__: list[str] = []
