"""Drives python-dbusmock's bluez5 template on the bus in DBUS_SYSTEM_BUS_ADDRESS.

Used by bluez_mock.rs; every subcommand prints JSON (or nothing) and exits non-zero
on failure. Never run it against the real system bus: it refuses to when
DBUS_SYSTEM_BUS_ADDRESS is unset.
"""

import json
import os
import sys
import time

import dbus

if not os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"):
    sys.exit("DBUS_SYSTEM_BUS_ADDRESS is not set: refusing to touch the real system bus")

bus = dbus.SystemBus()
PROPS = "org.freedesktop.DBus.Properties"


def mock():
    return dbus.Interface(bus.get_object("org.bluez", "/org/bluez"), "org.bluez.Mock")


def props(path):
    return dbus.Interface(bus.get_object("org.bluez", path), PROPS)


def wait():
    deadline = time.time() + 20
    while time.time() < deadline:
        if bus.name_has_owner("org.bluez"):
            return
        time.sleep(0.05)
    sys.exit("org.bluez did not appear on the bus")


def add_adapter(name):
    print(json.dumps(str(mock().AddAdapter(name, "kith-test"))))


def add_device(adapter, address, alias):
    print(json.dumps(str(mock().AddDevice(adapter, address, alias))))


def service_data(path, uuid, hex_bytes):
    # The template types ServiceData as aa{sv}; BlueZ (and btleplug) use a{sv}.
    value = dbus.Dictionary(
        {uuid: dbus.Array(bytes.fromhex(hex_bytes), signature="y")}, signature="sv"
    )
    props(path).Set("org.bluez.Device1", "ServiceData", value)


def rssi(path, value):
    props(path).Set("org.bluez.Device1", "RSSI", dbus.Int16(int(value)))


def power(adapter, state):
    props("/org/bluez/" + adapter).Set(
        "org.bluez.Adapter1", "Powered", dbus.Boolean(state == "on")
    )


def adverts(adapter):
    """Registered advertisements, with their properties read back from their owner."""
    path = "/org/bluez/" + adapter
    calls = dbus.Interface(bus.get_object("org.bluez", path), "org.freedesktop.DBus.Mock")
    registered = [str(args[0]) for _, args in calls.GetMethodCalls("RegisterAdvertisement")]
    unregistered = [str(args[0]) for _, args in calls.GetMethodCalls("UnregisterAdvertisement")]
    active = int(props(path).Get("org.bluez.LEAdvertisingManager1", "ActiveInstances"))
    current = [p for p in registered if registered.count(p) > unregistered.count(p)]
    found = {}
    daemon = dbus.Interface(
        bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus"), "org.freedesktop.DBus"
    )
    for name in daemon.ListNames():
        if not name.startswith(":") or name == bus.get_unique_name():
            continue
        for adv in current:
            try:
                p = dbus.Interface(bus.get_object(name, adv, introspect=False), PROPS).GetAll(
                    "org.bluez.LEAdvertisement1"
                )
            except dbus.exceptions.DBusException:
                continue
            found[adv] = {
                "Type": str(p.get("Type", "")),
                "ServiceUUIDs": [str(u) for u in p.get("ServiceUUIDs", [])],
                "ServiceData": {
                    str(k): bytes(bytearray(v)).hex() for k, v in p.get("ServiceData", {}).items()
                },
                "MinInterval": int(p.get("MinInterval", 0)),
                "MaxInterval": int(p.get("MaxInterval", 0)),
            }
    print(
        json.dumps(
            {"registered": registered, "unregistered": unregistered, "active": active, "current": found}
        )
    )


COMMANDS = {
    "wait": wait,
    "add-adapter": add_adapter,
    "add-device": add_device,
    "service-data": service_data,
    "rssi": rssi,
    "power": power,
    "adverts": adverts,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
