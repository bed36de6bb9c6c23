"""The composition root: the ``elicence`` CLI (``elicence.cli``), its handlers (``elicence.commands``),
the end-to-end demo (``elicence.demo``) and the in-memory scenario shared by demo, tests and benchmarks
(``elicence.scenario``). Later issues add settings, the database and the app mounting the three roles."""

__all__: list[str] = []
