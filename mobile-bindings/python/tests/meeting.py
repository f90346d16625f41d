"""The meeting the exposure tests share: Bob hears Alice's beacons, Alice tests positive."""

from kith_mobile import BeaconSighting, PublishedKey, ReportType

DAY = 86_400
# 2023-11-15 09:00 UTC: the meeting starts.
MEETING = 1_700_038_800
TX_POWER = -20  # dBm announced in Alice's beacons
RSSI = -60  # dBm measured by Bob: attenuation 40 dB, ENX's "near" bucket (weight 100 %)


def hear(alice, bob, scans, start=MEETING):
    """Bob scans every 5 minutes and hears Alice's beacon each time (the first scan stands
    for 120 s, each later one for 300 s), recorded as one batch per scan."""
    for scan in range(scans):
        t = start + 300 * scan
        beacon = alice.beacon(t).service_data
        bob.record_sightings([BeaconSighting(service_data=beacon, rssi=RSSI, seen_at_unix_seconds=t, scan_id=t)])


def published(keys, report_type=ReportType.CONFIRMED_TEST, days_since_onset=0):
    """Keys as the health authority publishes them."""
    return [PublishedKey(key=k, report_type=report_type, days_since_onset=days_since_onset) for k in keys]
