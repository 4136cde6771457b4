"""Market-sentiment monitoring with alerts and a digest, learning from analysts' verdicts.

- ``data``: the financial tweets, split by seed, replayed as days of news with injected
  event and chatter bursts (the ground truth);
- ``entities``: the gazetteer as facts in the knowledge base, and the entity linker;
- ``history``: rolling windows, baselines and sector trends from the knowledge base;
- ``flow``: the workflow and its alert rules;
- ``alerts``: the alert outbox (deduplicated, exactly once) and the digest notes;
- ``webhook``: delivering the outbox to a webhook;
- ``outcomes``: analysts' useful/noise verdicts, which train the decision agent;
- ``digest``: the Markdown digest per period;
- ``training``, ``analyst``, ``report``: the runner's models, simulated analyst and report.

``examples/run_market_monitor.py`` runs it end to end.
"""
