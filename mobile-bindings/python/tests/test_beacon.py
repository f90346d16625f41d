"""The beacon an app advertises, driven through the generated Python bindings."""

import threading

import pytest

from kith_mobile import Beacon, ExposureEngine, KithError

# 2023-11-14 22:13:20 UTC; its interval starts 200 s earlier.
NOW = 1_700_000_000
INTERVAL = NOW // 600


def test_beacon_is_20_bytes_until_the_next_interval_boundary():
    engine = ExposureEngine.open_in_memory(-8)
    beacon = engine.beacon(NOW)
    assert isinstance(beacon, Beacon)
    assert isinstance(beacon.service_data, bytes)
    assert len(beacon.service_data) == 20
    assert beacon.interval_number == INTERVAL
    assert beacon.next_change_unix_seconds == (INTERVAL + 1) * 600


def test_beacon_is_stable_within_an_interval_and_changes_at_its_end():
    engine = ExposureEngine.open_in_memory(-8)
    first = engine.beacon(NOW)
    assert engine.beacon(first.next_change_unix_seconds - 1) == first
    later = engine.beacon(first.next_change_unix_seconds)
    assert later.interval_number == first.interval_number + 1
    assert later.service_data[:16] != first.service_data[:16]


def test_two_engines_have_different_keys():
    a, b = ExposureEngine.open_in_memory(-8), ExposureEngine.open_in_memory(-8)
    assert a.beacon(NOW).service_data != b.beacon(NOW).service_data


def test_current_beacon_uses_the_system_clock():
    import time

    before = int(time.time())
    beacon = ExposureEngine.open_in_memory(0).current_beacon()
    assert before // 600 <= beacon.interval_number <= int(time.time()) // 600


def test_time_beyond_interval_range_raises_invalid_time():
    engine = ExposureEngine.open_in_memory(-8)
    with pytest.raises(KithError.InvalidTime) as info:
        engine.beacon(2**32 * 600)
    assert "interval" in str(info.value)


def test_engine_is_usable_from_many_threads():
    engine = ExposureEngine.open_in_memory(-8)
    results, errors = [], []

    def worker():
        try:
            for _ in range(50):
                results.append(engine.beacon(NOW).service_data)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 400
    assert len(set(results)) == 1


def test_repr_shows_the_engine_but_never_its_keys():
    engine = ExposureEngine.open_in_memory(-8)
    engine.beacon(NOW)
    [key] = engine.keys_to_upload(NOW)
    text = repr(engine)
    assert text.startswith("ExposureEngine")
    assert "tx_power_dbm: -8" in text
    assert key.expose_secret().hex() not in text
    assert str(list(key.expose_secret())) not in text


def test_the_days_key_survives_reopening_the_store(tmp_path):
    path = str(tmp_path / "kith.db")
    first = ExposureEngine.open(path, -8).beacon(NOW)
    assert ExposureEngine.open(path, -8).beacon(NOW) == first


def test_a_store_path_that_cannot_be_opened_raises_storage(tmp_path):
    with pytest.raises(KithError.Storage):
        ExposureEngine.open(str(tmp_path / "no-such-dir" / "kith.db"), -8)
