"""The migration environment both apps share (Alembic runs it for every command).

:mod:`federation.migrate` hands it the connection, already inside the transaction that
holds the schema lock, and the app's tables; the revisions run in that transaction.
"""

from alembic import context

from federation.migrate import CONTEXT_OPTIONS

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=context.config.attributes["metadata"],
    **CONTEXT_OPTIONS,
)
with context.begin_transaction():
    context.run_migrations()
