"""The demo kit: a local partner sshd, demo secrets, a synthetic borough and a partner simulator.

Never imported by the product (supporting_families); a council removes it in production.
"""
