"""The enterprise wallet's backend role (OpenID4VCI client, OpenID4VP wallet). Built in a later issue."""

__all__: list[str] = []
