"""The demo network (``make demo``): sample publishers, an aggregator and a GP surgery's page.

Not shipped with the apps: it imports both of them and its sample data is made up.
"""
