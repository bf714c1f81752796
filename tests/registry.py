"""What the tests' worlds put in the SmartCommunicator emulator's registries, as a customer's account holds
them: the Entra tenant, and every valid number of the directory, 10DLC registered in E.164 (what
`build_tenant` does for the tenants it builds).

The SmartCommunicator emulator refuses unregistered tenants and numbers by default, as the real service
does. The numbers are read from the Graph emulator with phonenumbers itself, not with syncd's mapping, so a
number syncd gets wrong (a bad normalisation) is still refused; a number that is not valid at all ("call me
555") is never registered. A test of the unregistered path turns the worlds' registration off.
"""

from __future__ import annotations

import phonenumbers

from syncd.emulators.graph import GraphEmulator
from syncd.emulators.smartcomm import SmartCommEmulator


def e164(phone: str, region: str = "US") -> str | None:
    """`phone` in E.164 if it is a valid number (national forms read in `region`), else None.

    Read here with phonenumbers itself, not with syncd's mapping: the registry is the service's, and a
    mapping bug must not register the number it wrongly produces. An extension is dropped: the line's main
    number is the one registered.
    """
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def register_phones(smartcomm: SmartCommEmulator, *phones: str | None) -> None:
    """10DLC-register those of `phones` that are valid numbers."""
    numbers = [number for phone in phones if phone and (number := e164(phone)) is not None]
    smartcomm.register_numbers(numbers)


def register_directory(graph: GraphEmulator, smartcomm: SmartCommEmulator) -> None:
    """10DLC-register every valid number the directory holds (users' phones and Teams numbers)."""
    register_phones(smartcomm, *graph.phone_numbers())
