"""The protocol both Localfeed apps speak, written once.

- :mod:`.fetch` — the one guarded HTTP client every outbound request goes through;
- :mod:`.websub` — the WebSub hub, subscriber, signing and the hub's jobs;
- :mod:`.relay` — the change relay: changes pushed as fat pings (RPDE and Atom);
- :mod:`.queue` — the rq queue factory;
- :mod:`.feeds` — Atom and iCalendar renderers, and the builder of each app's feed items;
- :mod:`.feedpaging` — serving RPDE pages (cursor, next link, caching);
- :mod:`.db` — database engines, the schema lock, the one UTC column type and the change counter;
- :mod:`.clock` — the one "now", and an app's clock (the ``CLOCK`` setting in tests);
- :mod:`.config` — configuration loading.

It imports only :mod:`schema` of ours; the publisher and the aggregator import it and ``schema``.
"""
