"""The whole flow an app drives: beacons, sightings, upload, export file, matching, risk."""

import pytest

from kith_mobile import (
    ExportSigner,
    ExposureEngine,
    KithError,
    ReportType,
)
from meeting import DAY, MEETING, RSSI, TX_POWER, published


def meet(alice, bob, scans):
    """Bob scans every 5 minutes and hears Alice's current beacon each time, one call a beacon
    (meeting.hear records them in batches)."""
    for scan in range(scans):
        t = MEETING + 300 * scan
        bob.record_sighting(alice.beacon(t).service_data, RSSI, t, t)


def publish(signer, keys, report_type=ReportType.CONFIRMED_TEST):
    """What the health authority's server does with Alice's upload."""
    return signer.write_export(published(keys, report_type), [], "US", MEETING, MEETING + DAY)


@pytest.fixture
def people(tmp_path):
    alice = ExposureEngine.open(str(tmp_path / "alice.db"), TX_POWER)
    bob = ExposureEngine.open(str(tmp_path / "bob.db"), TX_POWER)
    return alice, bob


@pytest.fixture
def signer():
    return ExportSigner.generate("310", "v1")


def test_bob_learns_of_a_27_minute_exposure_to_alice(people, signer):
    alice, bob = people
    meet(alice, bob, scans=6)  # 120 s credited to the first scan, then 5 × 300 s

    keys = alice.keys_to_upload(MEETING + 3_600)
    assert len(keys) == 1
    assert keys[0].rolling_start_interval_number() == MEETING // 600 // 144 * 144
    assert keys[0].rolling_period() == (MEETING + 3_600) // 600 + 1 - keys[0].rolling_start_interval_number()
    assert keys[0].expose_secret().hex() not in repr(alice)

    later = MEETING + 2 * 3_600
    assert bob.exposure_summary(later).risk_level is None
    ingest = bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], later)
    [exposure] = ingest.new_exposures
    assert ingest.revised_exposures == [] and not ingest.already_ingested
    assert ingest.previous_risk_level is None

    summary = bob.exposure_summary(later)
    assert ingest.summary == summary
    assert exposure.windows == summary.windows
    assert summary.risk_level == 1  # ENX defaults: 15 weighted minutes in a day
    assert summary.days == [MEETING // DAY]
    [window] = summary.windows
    assert window.start_unix_seconds == MEETING
    assert window.report_type == ReportType.CONFIRMED_TEST
    assert window.days_since_onset == 0
    assert window.duration_seconds == 120 + 5 * 300
    assert [s.typical_attenuation for s in window.scan_instances] == [40] * 6
    [day] = summary.daily_summaries
    assert day.day == MEETING // DAY
    assert day.score_sum == pytest.approx(1_620)

    # The same file again matches nothing new.
    again = bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], later)
    assert again.already_ingested and again.new_exposures == []
    assert again.summary == summary


def test_a_revoked_diagnosis_clears_the_risk(people, signer):
    alice, bob = people
    meet(alice, bob, scans=6)
    keys = alice.keys_to_upload(MEETING + 3_600)
    trusted = [signer.trusted_public_key()]
    later = MEETING + 2 * 3_600
    ingest = bob.ingest_export(publish(signer, keys, ReportType.SELF_REPORT), trusted, later)
    assert len(ingest.new_exposures) == 1
    assert ingest.summary.risk_level == 1

    # The next day's file revokes Alice's diagnosis.
    revoked = published(keys, ReportType.REVOKED)
    next_file = signer.write_export([], revoked, "US", MEETING + DAY, MEETING + 2 * DAY)
    ingest = bob.ingest_export(next_file, trusted, later + DAY)
    assert ingest.new_exposures == []
    [revised] = ingest.revised_exposures
    assert revised.report_type == ReportType.REVOKED
    assert ingest.previous_risk_level == 1
    assert ingest.summary.risk_level is None
    summary = bob.exposure_summary(later + DAY)
    assert summary.risk_level is None
    assert summary.windows == []


def test_a_two_minute_exposure_is_recorded_but_below_the_threshold(people, signer):
    alice, bob = people
    meet(alice, bob, scans=1)
    keys = alice.keys_to_upload(MEETING + 3_600)
    assert len(bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], MEETING + 3_600).new_exposures) == 1
    summary = bob.exposure_summary(MEETING + 3_600)
    assert summary.risk_level is None
    assert summary.days == []
    assert [w.duration_seconds for w in summary.windows] == [120]


def test_keys_of_strangers_match_nothing(people, signer):
    alice, bob = people
    meet(alice, bob, scans=6)
    stranger = ExposureEngine.open_in_memory(TX_POWER)
    stranger.beacon(MEETING)
    keys = stranger.keys_to_upload(MEETING + 3_600)
    assert bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], MEETING + 3_600).new_exposures == []
    assert bob.exposure_summary(MEETING + 3_600).windows == []


def test_the_risk_configuration_rescores_and_persists(tmp_path, signer):
    alice = ExposureEngine.open_in_memory(TX_POWER)
    path = str(tmp_path / "bob.db")
    bob = ExposureEngine.open(path, TX_POWER)
    meet(alice, bob, scans=6)
    keys = alice.keys_to_upload(MEETING + 3_600)
    bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], MEETING + 3_600)

    # Level 1 needs 45 weighted minutes of confirmed-test exposure, level 2 any.
    bob.set_risk_configuration(
        '{"confirmedTestPerDaySumERVThreshold_1": 2700, "confirmedTestPerDaySumERVThreshold_2": 1}'
    )
    assert bob.exposure_summary(MEETING + 3_600).risk_level == 2
    with pytest.raises(KithError.InvalidRiskConfiguration):
        bob.set_risk_configuration("{")
    assert bob.exposure_summary(MEETING + 3_600).risk_level == 2
    assert ExposureEngine.open(path, TX_POWER).exposure_summary(MEETING + 3_600).risk_level == 2


def test_purge_forgets_exposures_after_14_days(people, signer):
    alice, bob = people
    meet(alice, bob, scans=6)
    keys = alice.keys_to_upload(MEETING + 3_600)
    bob.ingest_export(publish(signer, keys), [signer.trusted_public_key()], MEETING + 3_600)
    bob.purge(MEETING + 13 * DAY)
    assert len(bob.exposure_summary(MEETING + 3_600).windows) == 1
    bob.purge(MEETING + 15 * DAY)
    assert bob.exposure_summary(MEETING + 3_600).windows == []
    alice.purge(MEETING + 15 * DAY)
    assert alice.keys_to_upload(MEETING + 15 * DAY) == []


@pytest.mark.parametrize("length", [0, 19, 21, 31])
def test_a_payload_of_the_wrong_length_raises_invalid_payload(length):
    engine = ExposureEngine.open_in_memory(TX_POWER)
    with pytest.raises(KithError.InvalidPayload) as info:
        engine.record_sighting(bytes(length), RSSI, MEETING, MEETING)
    assert "20 bytes" in str(info.value)


@pytest.mark.parametrize(
    "corrupt",
    [b"", b"not a zip file", b"PK\x03\x04" + bytes(60)],
    ids=["empty", "text", "broken zip"],
)
def test_a_corrupt_export_file_raises_invalid_export_file(corrupt, signer):
    engine = ExposureEngine.open_in_memory(TX_POWER)
    with pytest.raises(KithError.InvalidExportFile):
        engine.ingest_export(corrupt, [signer.trusted_public_key()], MEETING)


def test_a_truncated_export_file_raises_invalid_export_file(people, signer):
    alice, bob = people
    alice.beacon(MEETING)
    file = publish(signer, alice.keys_to_upload(MEETING + 3_600))
    with pytest.raises(KithError.InvalidExportFile):
        bob.ingest_export(file[: len(file) // 2], [signer.trusted_public_key()], MEETING)


def test_a_file_signed_by_another_key_raises_untrusted_export_file(people, signer):
    alice, bob = people
    meet(alice, bob, scans=6)
    file = publish(signer, alice.keys_to_upload(MEETING + 3_600))
    impostor = ExportSigner.generate("310", "v1")  # same names, other key
    with pytest.raises(KithError.UntrustedExportFile) as info:
        bob.ingest_export(file, [impostor.trusted_public_key()], MEETING + 3_600)
    assert "does not verify" in str(info.value)
    with pytest.raises(KithError.UntrustedExportFile):
        bob.ingest_export(file, [], MEETING + 3_600)
    # Nothing was matched from the untrusted file.
    assert bob.exposure_summary(MEETING + 3_600).windows == []


def test_a_malformed_trusted_key_raises_invalid_public_key(signer):
    engine = ExposureEngine.open_in_memory(TX_POWER)
    trusted = signer.trusted_public_key()
    trusted.public_key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with pytest.raises(KithError.InvalidPublicKey):
        engine.ingest_export(b"", [trusted], MEETING)


def test_a_malformed_risk_configuration_raises_invalid_risk_configuration():
    engine = ExposureEngine.open_in_memory(TX_POWER)
    for bad in ["not json", '{"attenuationNearWeight": "heavy"}']:
        with pytest.raises(KithError.InvalidRiskConfiguration):
            engine.set_risk_configuration(bad)


def test_every_exception_is_a_kith_error():
    assert issubclass(KithError.InvalidPayload, KithError)
    assert issubclass(KithError.UntrustedExportFile, KithError)
    assert issubclass(KithError, Exception)
