"""Alembic environment: runs migrations on the connection given by switch.ledger.database."""

from alembic import context

from switch.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("billswitch migrations run through switch.ledger.database.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
