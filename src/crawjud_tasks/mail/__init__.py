"""Mail: Jinja2 templates and SMTP or outbox sending, as tasks.

Tasks here are named ``<namespace>.mail.*`` and routed to the ``<namespace>.mail`` queue; the
sending tasks arrive with their own issue.
"""
