#!/usr/bin/env python3
"""Writes the libphonenumber data campaignd embeds: time zones per number prefix, and the US state of US number
prefixes, from the `phonenumbers` wheel on PyPI (the Python port of libphonenumber, which ships the upstream
`timezones/map_data.txt` and geocoding data as Python modules; Apache-2.0, (C) The Libphonenumber Authors).

    scripts/libphonenumber-data.py [VERSION]      # default: the version in crates/campaign/data/libphonenumber/VERSION

Downloads the wheel with pip (PyPI is reachable), and writes into crates/campaign/data/libphonenumber/:
  timezones.tsv  one line per prefix (country code + leading digits): prefix, TAB, the IANA zones separated by spaces
  us_states.tsv  one line per US prefix: prefix, TAB, the two-letter USPS code of the state (or DC); a longer prefix
                 is kept only where its state differs from the state of the longest shorter prefix kept
  LICENSE        the data's licence, as shipped in the wheel
  VERSION        the phonenumbers version, which follows libphonenumber's
The output is deterministic: the same version writes the same bytes.
"""
import os
import re
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "campaign", "data", "libphonenumber")

# The geocoder names a US place "City, ST" or, for a whole area, the state's full name. These are the state names it
# uses (USPS codes); they are not a table of area codes: those come from the data.
STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ",
    "New Mexico": "NM", "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH",
    "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
}
CODES = set(STATE_NAMES.values())


def state_of(name):
    m = re.search(r", ([A-Z]{2})$", name)
    if m and m.group(1) in CODES:
        return m.group(1)
    return STATE_NAMES.get(name)


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else open(os.path.join(OUT, "VERSION")).read().split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "-d", tmp, f"phonenumbers=={version}"],
            check=True,
        )
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
            licence = next(n for n in z.namelist() if n.endswith("licenses/LICENSE") or n.endswith("/LICENSE"))
        sys.path.insert(0, tmp)
        import phonenumbers
        from phonenumbers.tzdata import TIMEZONE_DATA
        from phonenumbers.geodata import GEOCODE_DATA

        assert phonenumbers.__version__ == version, (phonenumbers.__version__, version)
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "timezones.tsv"), "w", newline="\n") as f:
            for prefix in sorted(TIMEZONE_DATA):
                f.write(f"{prefix}\t{' '.join(TIMEZONE_DATA[prefix])}\n")

        states = {}
        for prefix, names in GEOCODE_DATA.items():
            if prefix.startswith("1") and "en" in names:
                st = state_of(names["en"])
                if st:
                    states[prefix] = st
        kept = {}
        for prefix in sorted(states, key=lambda p: (len(p), p)):
            parent = next((prefix[:n] for n in range(len(prefix) - 1, 0, -1) if prefix[:n] in kept), None)
            if parent is None or kept[parent] != states[prefix]:
                kept[prefix] = states[prefix]
        with open(os.path.join(OUT, "us_states.tsv"), "w", newline="\n") as f:
            for prefix in sorted(kept):
                f.write(f"{prefix}\t{kept[prefix]}\n")

        with open(os.path.join(tmp, licence), "rb") as src, open(os.path.join(OUT, "LICENSE"), "wb") as dst:
            dst.write(src.read())
        with open(os.path.join(OUT, "VERSION"), "w", newline="\n") as f:
            f.write(f"{version}\n")
        print(f"libphonenumber data {version}: {len(TIMEZONE_DATA)} zone prefixes, {len(kept)} US state prefixes")


if __name__ == "__main__":
    main()
