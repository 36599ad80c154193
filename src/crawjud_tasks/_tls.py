"""Certificates of ``rediss://`` connections: checked by default, everywhere.

kombu connects to a ``rediss://`` broker without checking the server's certificate unless told
otherwise, so a server in the middle receives the password; Celery refuses a bare ``rediss://``
result backend at the first dispatch. The library gives each of its Redis connections the same
options, from the ``tls`` settings: the certificate and the server's name are checked against
``tls.ca_file`` (else the system's store). Turning the check off takes ``tls.verify = false`` or
``ssl_cert_reqs=none`` in a URL, and is logged as one WARNING per app.

Precedence: ``ssl_*`` parameters in a URL (kombu, Celery and redis-py read them over any option),
then a host's own ``broker_use_ssl``/``redis_backend_use_ssl``/``redbeat_redis_use_ssl``, then
these defaults.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from crawjud_tasks._guards import is_mapping
from crawjud_tasks._redact import redact_url

if TYPE_CHECKING:
    from crawjud_tasks._settings import TlsSettings

__all__ = ["ssl_options", "tls_config", "warn_if_unverified"]

logger = logging.getLogger("crawjud_tasks")

_OFF = frozenset({"none", "cert_none"})


def is_tls_url(url: object) -> bool:
    """Whether ``url`` is a ``rediss://`` URL."""
    return isinstance(url, str) and url.partition("://")[0].lower() == "rediss"


def ssl_options(tls: TlsSettings) -> dict[str, Any]:
    """The ``ssl_*`` options of a TLS connection to Redis (kombu, Celery, RedBeat, redis-py)."""
    if not tls.verify:
        return {"ssl_cert_reqs": ssl.CERT_NONE}
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if tls.ca_file is not None:
        options["ssl_ca_certs"] = str(tls.ca_file.expanduser())
    return options


def tls_config(broker_url: object, backend_url: object, tls: TlsSettings) -> dict[str, Any]:
    """The Celery settings that give ``rediss://`` URLs their certificate checks."""
    config: dict[str, Any] = {}
    if is_tls_url(broker_url):
        config["broker_use_ssl"] = ssl_options(tls)
        config["redbeat_redis_use_ssl"] = ssl_options(tls)
    if is_tls_url(backend_url):
        config["redis_backend_use_ssl"] = ssl_options(tls)
    return config


def warn_if_unverified(conf: Any, tls: TlsSettings) -> None:
    """Log one WARNING naming the app's ``rediss://`` URLs whose certificates go unchecked."""
    unchecked = [
        redact_url(url)
        for url, option in (
            (conf.broker_url, conf.broker_use_ssl),
            (conf.result_backend, conf.get("redis_backend_use_ssl")),
        )
        if is_tls_url(url) and _unchecked(str(url), option, tls)
    ]
    if unchecked:
        logger.warning(
            "TLS certificates are NOT checked for %s (tls.verify=false, ssl_cert_reqs=none or "
            "broker_use_ssl): a server in the middle receives the password",
            ", ".join(dict.fromkeys(unchecked)),
        )


def _unchecked(url: str, option: object, tls: TlsSettings) -> bool:
    query = dict(parse_qsl(urlsplit(url.split(";", 1)[0]).query))
    if "ssl_cert_reqs" in query:
        return query["ssl_cert_reqs"].lower() in _OFF
    if is_mapping(option) and "ssl_cert_reqs" in option:
        reqs: object = option["ssl_cert_reqs"]
        return reqs == ssl.CERT_NONE or str(reqs).lower() in _OFF
    return not tls.verify
