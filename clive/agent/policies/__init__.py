"""Policies that need no playbook: ``claude`` (the Messages API, with ``tools`` as its tool schema) and
``human`` (the co-pilot). The playbook-driven ones (scripted steps, the sweep) live in ``clive.experiments``."""
