"""The reference city receiver (``evaluator hub``): the other end of the pads' MQTT contract.

It lives in ``sync/`` because it is storage plus MQTT, like the pad's own ``sync/store.py`` and
``sync/mqtt.py``: an adapter floor package that imports only ``evaluator.rules`` and
``sync.keys``, so a city server installs the same wheel and runs ``evaluator hub run`` without
the pad's screen, printer or app ever being imported.

* :mod:`sync.hub.schemas` — the published JSON Schemas (``docs/schemas``, package ``sync.schemas``).
* :mod:`sync.hub.db` — :func:`~sync.hub.db.open_db`: SQLite (default) or PostgreSQL, one DDL.
* :mod:`sync.hub.ingest` — one message → stored / duplicate / parked / dead, exactly once.
* :mod:`sync.hub.receiver` — the MQTT 5 shared-subscription receiver thread; acks, dead letters.
* :mod:`sync.hub.figures`, :mod:`sync.hub.export` — art. 33 figures, follow-up lists, CSV.
"""
