"""Maintenance: log cleanup, backups, health check, data sync, cache cleanup and their schedules.

Tasks here are named ``<namespace>.maintenance.*`` and routed to the ``<namespace>.maintenance``
queue; the tasks arrive with their own issue.
"""
