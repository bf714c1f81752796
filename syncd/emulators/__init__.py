"""HTTPS emulators of the Entra token endpoint + Microsoft Graph and of SmartCommunicator, the tenant
builder, and the `syncd demo` / `syncd emulate` commands built on them. Product code never imports this
package; it uses only the product's public entry points (settings, `Engine`, `Store`, the report
helpers).
"""
