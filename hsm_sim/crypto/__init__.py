"""Pure cryptographic building blocks of the HSM simulator.

Everything here is a small pure function over ``bytes`` (keys, blocks) and
``str`` (digits), so the simulator and the in-process HSM share one tested
implementation and never hold more state than the LMK set they are given.
"""
