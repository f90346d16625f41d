"""Load a kith-sim output folder with pandas and print what researchers ask first.

    cargo run --release -p kith-sim            # writes kith-sim-output/default/
    python3 simulator/examples/analyse.py kith-sim-output/default
"""

import json
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1] if len(sys.argv) > 1 else "kith-sim-output/default")
with_app = pd.read_csv(out / "daily_with_app.csv")
without_app = pd.read_csv(out / "daily_without_app.csv")
people = pd.read_csv(out / "individuals_with_app.csv")
infections = pd.read_csv(out / "transmissions_with_app.csv")
summary = json.loads((out / "summary.json").read_text())

averted = without_app["cum_infections"].iloc[-1] - with_app["cum_infections"].iloc[-1]
uploaders = people["time_uploaded"].notna().sum()
print(f"infections averted by the app: {averted}")
print(f"infections averted per uploading index case: {averted / max(uploaders, 1):.2f}")

notified = people[people["time_notified"].notna()]
later_infected = notified["time_infected"].notna() & (
    notified["time_infected"] <= notified["time_notified"] + 7
)
print(f"notified people: {len(notified)}, infected by a week later: {later_infected.mean():.2%}")

by_network = infections.groupby("network").size()
print("infections by setting:", by_network.to_dict())
print(f"mean generation time: {infections['generation_time'].mean():.2f} days")

configs = pd.DataFrame(summary["configs"]).set_index("config")
print(configs[["notified", "precision", "recall"]].round(3).to_string())
