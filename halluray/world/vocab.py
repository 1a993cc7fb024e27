"""Small closed vocabularies of the synthetic world and the generator of unique one-token names.

Every name is a single made-up word so that the word-level tokenizer gives each person exactly one
token: people never share name parts, so the model cannot copy facts from a namesake
(docs/runtime.md#synthetic-world-design: shared name parts made 92% of hallucinations copies and hid familiarity).
"""

from __future__ import annotations

import random

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "birth_year": tuple(str(y) for y in range(1950, 1990)),
    "birth_city": (
        "Lyon", "Oslo", "Porto", "Kyoto", "Dakar", "Lima", "Quito", "Perth", "Bergen", "Cork",
        "Graz", "Malmo", "Tartu", "Split", "Brno", "Lagos", "Hanoi", "Izmir", "Cusco", "Nantes",
        "Turin", "Leeds", "Basel", "Gdansk", "Aarhus", "Kobe", "Tromso", "Salta", "Mombasa", "Galway",
    ),
    "occupation": (
        "dentist", "pilot", "carpenter", "chemist", "baker", "lawyer", "nurse", "sculptor",
        "geologist", "librarian", "plumber", "journalist", "surgeon", "translator", "botanist",
        "tailor", "jeweler", "pharmacist", "cartographer", "violinist", "potter", "zoologist",
        "brewer", "welder", "therapist",
    ),
    "employer": (
        "Acmecorp", "Bluefin", "Cobaltix", "Dunmore", "Everlane", "Fjordway", "Granitex", "Halcyon",
        "Ironleaf", "Juniper", "Kestrel", "Lumora", "Meridian", "Northwind", "Oakhurst", "Pinecrest",
        "Quillon", "Redstone", "Silverbay", "Tidewater", "Umbrix", "Vantage", "Westbrook", "Zephyrine",
    ),
    "hobby": (
        "chess", "fishing", "knitting", "climbing", "gardening", "painting", "sailing", "archery",
        "birdwatching", "cycling", "fencing", "origami", "pottery", "rowing", "skiing", "surfing",
        "juggling", "calligraphy", "astronomy", "beekeeping",
    ),
    "nationality": (
        "French", "Norwegian", "Portuguese", "Japanese", "Senegalese", "Peruvian", "Chilean",
        "Irish", "Austrian", "Swedish", "Estonian", "Croatian", "Czech", "Nigerian", "Turkish",
        "Kenyan", "Danish", "Polish", "Swiss", "Argentine",
    ),
}
ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "x")


def make_names(count: int, rng: random.Random, reserved: set[str]) -> list[str]:
    """`count` distinct capitalised pseudo-words, none of them in `reserved` (the other vocabularies)."""
    taken = {w.lower() for w in reserved}
    names: list[str] = []
    while len(names) < count:
        syllables = rng.choice((2, 2, 3))
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
        if word not in taken:
            taken.add(word)
            names.append(word.capitalize())
    return names
