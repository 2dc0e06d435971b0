"""Load generator for the switch: many terminals over TCP, figures, and a ledger check.

Run ``python -m loadtest --help``. The modules are small on purpose:
``workload`` builds messages, ``client`` speaks one connection, ``driver``
offers load, ``stats`` counts, ``ledger_check`` audits the database.
"""
