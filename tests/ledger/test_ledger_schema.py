"""The Alembic migrations create exactly the schema of switch/ledger/schema.py, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from switch.ledger.database import alembic_config, make_engine, migrate
from switch.ledger.schema import metadata


def _diff(engine: Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrations_produce_exactly_the_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        migrate(engine)
        assert _diff(engine) == []
        assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
        assert _revision(engine) == _head()
    finally:
        engine.dispose()


def test_migrate_again_is_a_no_op(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        migrate(engine)
        assert _revision(engine) == _head()
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_schema_keeps_the_uniqueness_the_ledger_relies_on(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        insp = inspect(engine)
        uniques = {
            u["name"]: set(u["column_names"]) for u in insp.get_unique_constraints("requests")
        }
        assert uniques["uq_requests_key"] == {
            "acquirer_id",
            "terminal_id",
            "stan",
            "transmitted",
            "mti",
        }
        debts = {u["name"]: set(u["column_names"]) for u in insp.get_unique_constraints("debts")}
        assert debts["uq_debts_period"] == {"biller_code", "account", "period"}
        fks = {
            (fk["constrained_columns"][0], fk["referred_table"])
            for fk in insp.get_foreign_keys("entries")
        }
        assert fks == {("journal_id", "journal"), ("account_code", "accounts")}
    finally:
        engine.dispose()
