"""Bots: the run lifecycle of CrawJUD robots (registry, inputs, checkpoints, events, reports).

Tasks here are named ``<namespace>.bots.*`` and routed to the ``<namespace>.bots`` queue. The run
lifecycle arrives with its own issue; this package already fixes the name and the queue.
"""
