"""The reference biller server: the online biller API of billers.md, for tests and demos.

``billswitch biller-sim`` (or ``python -m routing.biller_sim``) serves several
billers at once, each under its own path prefix, with HMAC-signed requests and
answers, a small SQLite store that survives a kill, and faults a test can switch
on and off while it runs (``faults.py``, the ``/_control`` API in ``resource.py``).
"""
