"""The source: Entra tokens (msal), Graph reads (msgraph-sdk) and the pure member mapping."""
