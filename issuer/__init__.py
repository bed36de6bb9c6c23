"""The issuing authority's role (OpenID4VCI issuer, status lists, audit). Built in a later issue."""

__all__: list[str] = []
