"""The protocol both Localfeed apps speak, written once.

- :mod:`.fetch` — the one guarded HTTP client every outbound request goes through;
- :mod:`.websub` — the WebSub hub, subscriber, signing and the hub's jobs;
- :mod:`.feeds` — Atom and iCalendar renderers;
- :mod:`.feedpaging` — serving RPDE pages (cursor, next link, caching);
- :mod:`.db` — database engines, the schema lock;
- :mod:`.config` — configuration loading.

It imports only :mod:`schema` of ours; the publisher and the aggregator import it and ``schema``.
"""
