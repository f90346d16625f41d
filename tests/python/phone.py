"""A phone app on kith-mobile's Python bindings, on kith-agent's simulated radio.

    python3 phone.py run --data-dir D --ether E --position X,Y --server URL [--clock-offset-seconds N]
    python3 phone.py report --code CODE --data-dir D --server URL [--clock-offset-seconds N]

`run` is the app in the background: it advertises the engine's beacon and scans on the
simulated radio, records what it hears with the engine, and syncs with the kith-server
every few seconds: export files verified and matched by the engine, a notification when
its risk level is set. Like kith-agent's test harness, it appends `<new exposures> <days>`
to `notifications` in its data directory when it notifies; `sightings` holds how many
beacons it recorded. `report` uploads the engine's keys with the health authority's code
(the GAEN key server's plain JSON publish).

The radio is kith-agent's, `ble-agent/src/radio/sim.rs` documents it: a UDP socket on
127.0.0.1 announced by an empty file named by its port in the ether directory; packets
"KITHSIM1" ‖ id (u64 LE) ‖ x, y (f32 LE) ‖ tx dBm (i8) ‖ 20 bytes of service data, sent
to every announced port; the receiver's RSSI is tx − 40 dB − 20·log10(max(d, 0.1 m)) with
3 dB of Gaussian noise, heard at −100 dBm or more (the agent's defaults).
"""

import argparse
import base64
import datetime
import json
import math
import os
import random
import signal
import socket
import struct
import sys
import time
import urllib.request

from kith_mobile import BeaconSighting, ExposureEngine, KithError, TrustedPublicKey

MAGIC = b"KITHSIM1"
PACKET = struct.Struct("<8sQffb20s")
TX_POWER = -26
LOSS_AT_1M, EXPONENT, NOISE, SENSITIVITY = 40.0, 2.0, 3.0, -100.0
ADVERTISE_EVERY = 0.25  # s
SCAN_SECONDS, SCAN_EVERY = 2.0, 5.0  # kith-agent's --fast cycle
SYNC_EVERY = 3.0  # s


def log(message):
    print(f"phone: {message}", file=sys.stderr, flush=True)


def now(args):
    return int(time.time()) + args.clock_offset_seconds


def engine(args):
    return ExposureEngine.open(os.path.join(args.data_dir, "phone.sqlite"), TX_POWER)


def get(args, path):
    with urllib.request.urlopen(f"{args.server}/{path.lstrip('/')}", timeout=20) as answer:
        return answer.read()


class Radio:
    """This phone on the ether."""

    def __init__(self, ether, position):
        self.ether, self.position = ether, position
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]
        os.makedirs(ether, exist_ok=True)
        self.announcement = os.path.join(ether, str(self.port))
        open(self.announcement, "wb").close()

    def peers(self):
        return [int(n) for n in os.listdir(self.ether) if n.isdigit() and int(n) != self.port]

    def advertise(self, service_data):
        packet = PACKET.pack(MAGIC, random.getrandbits(64), *self.position, TX_POWER, service_data)
        for port in self.peers():
            try:
                self.socket.sendto(packet, ("127.0.0.1", port))
            except OSError:
                pass  # a peer that left

    def drain(self):
        """What arrived since the last call: (service data, RSSI) of each packet heard."""
        heard = []
        while True:
            try:
                packet = self.socket.recv(128)
            except BlockingIOError:
                return heard
            if len(packet) != PACKET.size or not packet.startswith(MAGIC):
                continue
            _, _, x, y, tx, service_data = PACKET.unpack(packet)
            d = max(math.hypot(x - self.position[0], y - self.position[1]), 0.1)
            if not math.isfinite(d):
                continue
            rssi = tx - LOSS_AT_1M - 10 * EXPONENT * math.log10(d)
            if rssi >= SENSITIVITY:
                rssi = max(-127, min(20, round(rssi + random.gauss(0, NOISE))))
                heard.append((service_data, rssi))

    def leave(self):
        os.remove(self.announcement)


class Sync:
    """The app's downloads: the server's configuration, its index, new files."""

    def __init__(self, args, phone):
        self.args, self.phone, self.done = args, phone, set()

    def run(self):
        config = json.loads(get(self.args, "v1/config"))
        self.phone.set_risk_configuration(json.dumps(config["riskConfiguration"]))
        # The current key, and every key while they rotate (it among them): each once.
        keys = [config["exportVerificationKey"]] if config.get("exportVerificationKey") else []
        keys += config.get("exportVerificationKeys", [])
        keys = {(k["keyId"], k["keyVersion"]): k["publicKey"] for k in keys}
        trusted = [TrustedPublicKey(key_id=i, key_version=v, public_key=p) for (i, v), p in keys.items()]
        index = get(self.args, config.get("exportIndex", "v1/exports/index.txt")).decode().split()
        for name in index:
            if name in self.done:
                continue
            try:
                change = self.phone.ingest_export(get(self.args, name), trusted, now(self.args))
            except KithError as e:
                log(f"skipping export {name}, retried next time: {e}")
                continue
            self.done.add(name)
            log(f"synced new_files=1 new_exposures={len(change.new_exposures)}")
            summary = change.summary
            if summary.risk_level is not None and summary.risk_level != change.previous_risk_level:
                days = ",".join(str(datetime.date.fromtimestamp(0) + datetime.timedelta(days=d)) for d in summary.days)
                with open(os.path.join(self.args.data_dir, "notifications"), "a") as file:
                    file.write(f"{len(change.new_exposures)} {days}\n")
                log(f"exposure risk_level={summary.risk_level} days={days}")


def run(args):
    phone = engine(args)
    radio = Radio(args.ether, args.position)
    sync = Sync(args, phone)
    log(f"on the simulated radio at {args.position}")
    sightings, heard, scan = 0, {}, None  # scan: (its id, when it ends) while scanning
    next_advertisement = next_scan = next_sync = time.monotonic()
    try:
        while True:
            t = time.monotonic()
            if t >= next_advertisement:
                radio.advertise(phone.beacon(now(args)).service_data)
                next_advertisement += ADVERTISE_EVERY
            if scan is None and t >= next_scan:
                radio.drain()  # what arrived while not scanning was not heard
                scan, heard = (now(args), t + SCAN_SECONDS), {}
            if scan is not None:
                heard.update(radio.drain())  # one per beacon and scan, the latest RSSI
                if t >= scan[1]:
                    phone.record_sightings(
                        [BeaconSighting(service_data=s, rssi=r, seen_at_unix_seconds=scan[0], scan_id=scan[0]) for s, r in heard.items()]
                    )
                    sightings += len(heard)
                    with open(os.path.join(args.data_dir, "sightings"), "w") as file:
                        file.write(f"{sightings}\n")
                    scan, next_scan = None, t + SCAN_EVERY - SCAN_SECONDS
            if t >= next_sync:
                try:
                    sync.run()
                except OSError as e:
                    log(f"sync failed, will retry: {e}")
                next_sync = time.monotonic() + SYNC_EVERY
            wake = min(next_advertisement, next_sync, scan[1] if scan else next_scan)
            time.sleep(max(0.0, wake - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        radio.leave()


def report(args):
    phone = engine(args)
    keys = [
        {
            "key": base64.b64encode(bytes(k.expose_secret())).decode(),
            "rollingStartNumber": k.rolling_start_interval_number(),
            "rollingPeriod": k.rolling_period(),
        }
        for k in phone.keys_to_upload(now(args))
    ]
    body = json.dumps({"temporaryExposureKeys": keys, "verificationCode": args.code}).encode()
    request = urllib.request.Request(
        f"{args.server}/v1/publish", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=20) as answer:
        print(json.dumps({"keys_uploaded": len(keys), "answer": json.loads(answer.read())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--clock-offset-seconds", type=int, default=0)
    parser.add_argument("--ether")
    parser.add_argument("--position", type=lambda t: tuple(float(v) for v in t.split(",")), default=(0.0, 0.0))
    parser.add_argument("--code")
    args = parser.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    # SIGTERM ends `run` as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
