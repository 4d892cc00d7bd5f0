"""The rules of the 好差评 pad (standard library only): levels, reasons, requests and who is
rated, the session state machine, records and their hash chain, the counter-link protocol, the
clock, the errors.  Nothing here imports a device library or the wiring above it."""
