"""Customer-support triage that learns from feedback: the example behind ``make demo``.

- ``data``: Banking77 tickets and NLU++ slot examples (shipped in ``examples/data``), split
  by intent and fixed by seed, and the 77 help articles (``articles.json``);
- ``actions``: send a reply, ask a clarifying question, freeze a card, open a ticket, each
  writing its row (outbox, card freezes, tickets) in the knowledge base exactly once;
- ``flow``: the workflow (perceive -> reason -> decide -> execute) and its decision rules;
- ``training``: the first agents, and the intent agent's recorded feedback rounds;
- ``review``: the simulated review team, and the numbers each batch of tickets shows.

``examples/run_demo.py`` runs it end to end.
"""
