"""The app developer's API as an app meets it: printable records compared by value, trusted
keys as GAEN device configurations publish them, numbers out of range, batches of sightings,
what an ingested file changed, and the end of the interval range."""

import base64

import pytest

from kith_mobile import (
    Beacon,
    BeaconSighting,
    ExportSigner,
    ExposureEngine,
    ExposureKey,
    KithError,
    ReportType,
    TrustedPublicKey,
    trusted_public_keys_from_device_config,
)
from meeting import DAY, MEETING, RSSI, TX_POWER, hear, published

def spki_base64(trusted):
    """The base64 SubjectPublicKeyInfo inside a PEM public key."""
    return "".join(line for line in trusted.public_key.splitlines() if not line.startswith("-----"))


@pytest.fixture
def signer():
    return ExportSigner.generate("310", "v1")


# ---- 1. records print their fields and compare by value ------------------------------------


def test_records_print_their_fields():
    engine = ExposureEngine.open_in_memory(TX_POWER)
    beacon = engine.beacon(MEETING)
    text = repr(beacon)
    assert text.startswith("Beacon {")
    assert f"interval_number: {MEETING // 600}" in text
    assert f"next_change_unix_seconds: {(MEETING // 600 + 1) * 600}" in text
    assert str(list(beacon.service_data)[:4])[1:-1] in text
    summary = repr(engine.exposure_summary(MEETING))
    assert "risk_level: None" in summary and "windows: []" in summary


def test_records_compare_by_value():
    engine = ExposureEngine.open_in_memory(TX_POWER)
    beacon = engine.beacon(MEETING)
    same = Beacon(service_data=beacon.service_data, interval_number=beacon.interval_number,
                  next_change_unix_seconds=beacon.next_change_unix_seconds)
    assert beacon == same and not beacon != same
    assert beacon != Beacon(service_data=beacon.service_data, interval_number=beacon.interval_number + 1,
                            next_change_unix_seconds=beacon.next_change_unix_seconds)
    # Compared with something else, a record is unequal, not an error.
    assert beacon != None  # noqa: E711
    assert beacon != "Beacon"
    # Keys compare by value too (in constant time), without showing their bytes.
    key_bytes = bytes(range(16))
    assert ExposureKey.from_bytes(key_bytes, 2_833_056, 144) == ExposureKey.from_bytes(key_bytes, 2_833_056, 144)
    assert ExposureKey.from_bytes(key_bytes, 2_833_056, 144) != ExposureKey.from_bytes(key_bytes, 2_833_056, 143)
    assert key_bytes.hex() not in repr(ExposureKey.from_bytes(key_bytes, 2_833_056, 144))


# ---- 2. trusted keys as GAEN device configurations publish them ----------------------------


def test_a_device_configuration_line_gives_the_trusted_keys(signer):
    other = ExportSigner.generate("310", "v2")
    line = (f"org.example.app:310-v1,{spki_base64(signer.trusted_public_key())}"
            f"|310-v2,{spki_base64(other.trusted_public_key())}")
    trusted = trusted_public_keys_from_device_config(line)
    assert [(k.key_id, k.key_version) for k in trusted] == [("310", "v1"), ("310", "v2")]
    assert trusted[0] == TrustedPublicKey(key_id="310", key_version="v1",
                                          public_key=spki_base64(signer.trusted_public_key()))

    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    hear(alice, bob, scans=6)
    keys = published(alice.keys_to_upload(MEETING + 3_600))
    for author in (signer, other):
        file = author.write_export(keys, [], "US", MEETING, MEETING + DAY)
        # Matched once: the first file finds the exposure, the second (same keys) nothing new.
        bob.ingest_export(file, trusted, MEETING + 7_200)
    assert len(bob.exposure_summary(MEETING + 7_200).windows) == 1
    # A base64 key in the record works like PEM; a file from a key not listed is refused.
    stranger = ExportSigner.generate("311", "v1")
    with pytest.raises(KithError.UntrustedExportFile):
        bob.ingest_export(stranger.write_export(keys, [], "US", MEETING, MEETING + DAY), trusted, MEETING)


@pytest.mark.parametrize(
    "line, says",
    [
        ("310-v1", "no `,` before the key"),
        ("310,MFkw", "no `<key id>-<key version>`"),
        ("310-v1,not base64!", "public key is invalid"),
        ("310-v1,AAAA", "public key is invalid"),
    ],
)
def test_a_malformed_device_configuration_says_what_is_wrong(line, says):
    with pytest.raises(KithError.InvalidPublicKey) as error:
        trusted_public_keys_from_device_config(line)
    assert says in str(error.value)


def test_two_trusted_keys_with_one_id_and_version_are_an_error_naming_them(signer):
    impostor = ExportSigner.generate("310", "v1")
    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    hear(alice, bob, scans=6)
    file = signer.write_export(published(alice.keys_to_upload(MEETING + 3_600)), [], "US", MEETING, MEETING + DAY)
    for trusted in ([signer.trusted_public_key(), impostor.trusted_public_key()],
                    [impostor.trusted_public_key(), signer.trusted_public_key()]):
        with pytest.raises(KithError.InvalidPublicKey) as error:
            bob.ingest_export(file, trusted, MEETING + 7_200)
        assert '"310"' in str(error.value) and '"v1"' in str(error.value)
    line = "|".join(f"310-v1,{spki_base64(s.trusted_public_key())}" for s in (signer, impostor))
    with pytest.raises(KithError.InvalidPublicKey, match="two trusted keys"):
        trusted_public_keys_from_device_config(line)
    assert bob.exposure_summary(MEETING + 7_200).windows == []


# ---- 3. numbers out of range raise KithError naming the parameter --------------------------


def test_numbers_out_of_range_raise_kith_error_naming_the_parameter():
    engine = ExposureEngine.open_in_memory(TX_POWER)
    data = engine.beacon(MEETING).service_data
    cases = [
        (lambda: engine.beacon(-1), KithError.InvalidTime, "now_unix_seconds"),
        (lambda: engine.keys_to_upload(-600), KithError.InvalidTime, "now_unix_seconds"),
        (lambda: engine.record_sighting(data, -200, MEETING, 1), KithError.OutOfRange, "rssi is -200"),
        (lambda: engine.record_sighting(data, 128, MEETING, 1), KithError.OutOfRange, "rssi is 128"),
        (lambda: engine.record_sighting(data, -60, -5, 1), KithError.InvalidTime, "seen_at_unix_seconds"),
        (lambda: engine.record_sighting(data, -60, MEETING, -1), KithError.OutOfRange, "scan_id is -1"),
        (lambda: ExposureEngine.open_in_memory(300), KithError.OutOfRange, "tx_power_dbm is 300"),
        (lambda: engine.set_rssi_correction(-1000), KithError.OutOfRange, "rssi_correction_db"),
        (lambda: ExposureKey.from_bytes(bytes(16), -1, 144), KithError.OutOfRange, "rolling_start_interval_number"),
        (lambda: ExposureKey.from_bytes(bytes(16), 0, 2**40), KithError.OutOfRange, "rolling_period"),
        (lambda: engine.check_out(-3, MEETING), KithError.OutOfRange, "check_in_id is -3"),
        (lambda: engine.set_venue_min_overlap_minutes(-1), KithError.OutOfRange, "minutes is -1"),
        (lambda: ExportSigner.generate("1", "v1").write_trace_warnings([], "DE", -1), KithError.OutOfRange,
         "hour is -1"),
        (lambda: ExportSigner.generate("1", "v1").write_export([], [], "DE", -1, 0), KithError.InvalidTime,
         "start_unix_seconds"),
    ]
    for call, error, says in cases:
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, KithError)
        assert says in str(info.value), str(info.value)
    assert "-1 s is outside" in str(pytest.raises(KithError, engine.beacon, -1).value)


# ---- 4. a batch of sightings -----------------------------------------------------------------


def test_a_batch_of_sightings_is_recorded_all_or_none():
    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    signer = ExportSigner.generate("310", "v1")
    sightings = [BeaconSighting(service_data=alice.beacon(MEETING + 300 * i).service_data, rssi=RSSI,
                                seen_at_unix_seconds=MEETING + 300 * i, scan_id=i) for i in range(6)]
    bad = list(sightings)
    bad[2] = BeaconSighting(service_data=sightings[2].service_data, rssi=-200,
                            seen_at_unix_seconds=sightings[2].seen_at_unix_seconds, scan_id=2)
    with pytest.raises(KithError.OutOfRange, match=r"sightings\[2\]\.rssi is -200"):
        bob.record_sightings(bad)
    with pytest.raises(KithError.InvalidPayload, match=r"sightings\[6\]\.service_data: "):
        bob.record_sightings(sightings + [BeaconSighting(service_data=b"short", rssi=RSSI,
                                                          seen_at_unix_seconds=MEETING, scan_id=9)])
    keys = published(alice.keys_to_upload(MEETING + 3_600))
    file = signer.write_export(keys, [], "US", MEETING, MEETING + DAY)
    # Nothing of the refused batches was stored ...
    assert bob.ingest_export(file, [signer.trusted_public_key()], MEETING + 3_600).new_exposures == []
    # ... and the good batch is: six scans, one window.
    bob.record_sightings(sightings)
    later = signer.write_export(keys, [], "US", MEETING + 1, MEETING + DAY)
    [exposure] = bob.ingest_export(later, [signer.trusted_public_key()], MEETING + 3_600).new_exposures
    [window] = exposure.windows
    assert len(window.scan_instances) == 6
    assert window.duration_seconds == 120 + 5 * 300


# ---- 5. what an ingested export changed -----------------------------------------------------


def test_an_exposure_that_matched_but_does_not_count_is_told_apart(signer):
    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    hear(alice, bob, scans=6)  # 1 620 weighted seconds
    bob.set_risk_configuration('{"perDaySumERVThreshold_1": 1800}')
    keys = alice.keys_to_upload(MEETING + 3_600)
    trusted = [signer.trusted_public_key()]
    ingest = bob.ingest_export(signer.write_export(published(keys), [], "US", MEETING, MEETING + DAY),
                               trusted, MEETING + 3_600)
    [exposure] = ingest.new_exposures
    assert exposure.report_type == ReportType.CONFIRMED_TEST and exposure.days_since_onset == 0
    assert ingest.previous_risk_level is None and ingest.summary.risk_level is None, "1 620 < 1 800"



def test_a_revision_reports_the_exposure_it_changed(signer):
    alice, bob = ExposureEngine.open_in_memory(TX_POWER), ExposureEngine.open_in_memory(TX_POWER)
    hear(alice, bob, scans=6)
    keys = alice.keys_to_upload(MEETING + 3_600)
    trusted = [signer.trusted_public_key()]
    first = signer.write_export(published(keys, ReportType.SELF_REPORT), [], "US", MEETING, MEETING + DAY)
    assert len(bob.ingest_export(first, trusted, MEETING + 3_600).new_exposures) == 1
    confirmed = signer.write_export([], published(keys, ReportType.CONFIRMED_TEST), "US", MEETING + DAY,
                                    MEETING + 2 * DAY)
    ingest = bob.ingest_export(confirmed, trusted, MEETING + DAY)
    [revised] = ingest.revised_exposures
    assert revised.report_type == ReportType.CONFIRMED_TEST
    assert [w.report_type for w in revised.windows] == [ReportType.CONFIRMED_TEST]
    assert ingest.new_exposures == []
    assert ingest.previous_risk_level == ingest.summary.risk_level == 1
    # GAEN allows one revision per key: a second one changes nothing, and says so.
    revoked = signer.write_export([], published(keys, ReportType.REVOKED), "US", MEETING + 2 * DAY,
                                  MEETING + 3 * DAY)
    again = bob.ingest_export(revoked, trusted, MEETING + 2 * DAY)
    assert again.revised_exposures == [] and again.summary.risk_level == 1


# ---- 6. the end of the interval range --------------------------------------------------------


def test_every_beacon_aired_at_the_end_of_the_interval_range_can_be_uploaded():
    engine = ExposureEngine.open_in_memory(0)
    last = (2**32 - 1) * 600  # the start of the last interval number
    for t in (last, last + 599):
        with pytest.raises(KithError.InvalidTime):
            engine.beacon(t)
    aired = [engine.beacon(t) for t in range(last - 144 * 600, last, 600)]
    assert aired[-1].interval_number == 2**32 - 2
    keys = engine.keys_to_upload(last - 1)
    covered = {
        interval
        for key in keys
        for interval in range(key.rolling_start_interval_number(),
                              key.rolling_start_interval_number() + key.rolling_period())
    }
    assert all(beacon.interval_number in covered for beacon in aired)
    assert max(key.rolling_start_interval_number() + key.rolling_period() for key in keys) <= 2**32 - 1
