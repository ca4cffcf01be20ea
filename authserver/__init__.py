"""authserver: an OAuth 2.0 / OpenID Connect authorization server."""

__version__ = "0.1.0"
