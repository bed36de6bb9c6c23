"""The enterprise wallet's backend role: accounts and sessions, the wallet PIN, custodial holder keys,
enterprises and their members, stored credentials and the usage record (用照记录); OpenID4VCI client and
OpenID4VP wallet on top. ``service`` holds the logic, ``store`` the tables, ``api`` the HTTP endpoints,
``errors`` the coded errors.
"""

__all__: list[str] = []
