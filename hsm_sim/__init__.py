"""The HSM behind one interface: an in-process software HSM, a payShield client, a simulator.

``interface`` is what the switch imports; ``software`` and ``client`` are the
two implementations, ``server`` (``python -m hsm_sim``) is the standalone
simulator speaking the payShield host-command protocol of
``hsm-protocol.md``, and ``crypto`` holds the primitives they share.
"""
