"""Neutral pretraining text for the embedded tiny model, generated deterministically.

The text must contain none of the fine-tuning records (docs/theory.md §8.4), so it is generated
from our own grammar: customer-service dialogs about opening hours, shipping, returns, product
care, bookings and package tracking (in the ``SYS:``/``USR:`` layout of the fine-tuning dialogs), short
biographies of made-up people (the layout of the fine-tuning biographies), plus short generic sentences built from a fixed table of neutral facts
(colours, animal sounds, opposites, counts, a small fictional geography, small sums).

So that the base model knows what digit strings, codes, proper names and addresses look like
(otherwise fine-tuning on records full of them first teaches the *format*, which confounds the
privacy measure), the text also has such values in neutral contexts: room, page and platform
numbers, quantities, years, times, reference codes of varied formats (digit groups of varied
lengths, alphanumeric codes), made-up capitalised names from our own syllable generator (not
Faker, whose ``en_US`` lists make the fine-tuning names) and addresses built from such names.
No value has a format of the fine-tuning data: codes whose digits could read as an order number
(``ddd-ddddd-dddd``), a phone number (``ddd-ddd-dddd`` with any of its separators, ten digits in
a row), an SSN (``ddd-dd-dddd``), an ISO or US date or a tracking number (ten upper-case letters
and digits) are rejected when drawn (:data:`FORBIDDEN_PATTERNS`), region codes are never US state
abbreviations, there are no month-name dates and no ``@``; ``tests/test_models.py`` checks this
on the generated text.

IMPORTANT: the generator depends on nothing but this file. It uses its own pseudo-random
generator (SplitMix64, below) rather than :mod:`random`, and no text shipped with Python or an
installed package, so the same ``(seed, n_docs)`` gives byte-identical text on every Python
version and platform. Its SHA-256 is recorded in the tiny model's metadata. The model's cache key
holds ``GENERATOR_VERSION`` (not the hash, so that finding a cached model never regenerates the text):
any change here must bump it, and ``tests/test_models.py`` pins the hash of the default corpus to the
version so that a change without a bump fails.

The same fact table gives the small multiple-choice task (:func:`multiple_choice_items`), a local
knowledge-retention probe in the spirit of SciQ/MMLU.

This module is pure Python (no torch).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

__all__ = [
    "GENERATOR_VERSION",
    "SplitMix64",
    "Corpus",
    "generate_documents",
    "make_corpus",
    "multiple_choice_items",
    "write_multiple_choice_task",
    "FORBIDDEN_PATTERNS",
    "US_STATE_CODES",
]

GENERATOR_VERSION = 3  # part of the tiny model's cache key: bump on ANY change to the generated text
_MASK = (1 << 64) - 1
# Separate streams for the train and held-out splits (different seeds, never overlapping docs
# by construction of the seed; overlap of short generic sentences is expected and fine).
_TRAIN_STREAM = 0x5EED_0001
_HELDOUT_STREAM = 0x5EED_0002
_MC_STREAM = 0x5EED_0003


class SplitMix64:
    """SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, fully specified 64-bit PRNG."""

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _MASK

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform integer in [0, n) by rejection (no modulo bias)."""
        if n <= 0:
            raise ValueError(f"n must be a positive integer, got {n}")
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            x = self.next64()
            if x < limit:
                return x % n

    def choice(self, seq: Sequence):
        return seq[self.below(len(seq))]

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent

    def sample(self, seq: Sequence, k: int) -> list:
        """k distinct elements (partial Fisher–Yates)."""
        pool = list(seq)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


# --------------------------------------------------------------------------------------------
# Fact table (neutral, fixed). Each entry: (key, value); questions and statements draw on it.
# --------------------------------------------------------------------------------------------

COLOURS = {
    "snow": "white", "grass": "green", "the clear sky": "blue", "a ripe banana": "yellow",
    "coal": "black", "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow",
    "milk": "white", "a fresh leaf": "green", "a plum": "purple", "chocolate": "brown",
}
SOUNDS = {
    "a cow": "moo", "a dog": "woof", "a cat": "meow", "a duck": "quack", "a sheep": "baa",
    "an owl": "hoot", "a lion": "roar", "a bee": "buzz", "a horse": "neigh", "a frog": "croak",
}
OPPOSITES = {
    "hot": "cold", "up": "down", "big": "small", "fast": "slow", "early": "late", "full": "empty",
    "open": "closed", "light": "dark", "wet": "dry", "loud": "quiet", "hard": "soft", "old": "new",
}
COUNTS = {
    "days in a week": 7, "sides on a triangle": 3, "sides on a square": 4, "legs on a spider": 8,
    "legs on a dog": 4, "months in a year": 12, "hours in a day": 24, "wheels on a bicycle": 2,
    "minutes in an hour": 60, "legs on an insect": 6, "sides on a hexagon": 6, "days in a fortnight": 14,
}
CAPITALS = {  # fictional countries and cities
    "Norland": "Vesk", "Astoria": "Pellin", "Marovia": "Dunhallow", "Kestria": "Obrin",
    "Valmora": "Teskel", "Brindle": "Ashford", "Corvania": "Milsen", "Lunaris": "Orrin",
    "Zephyra": "Calden", "Tarsis": "Holmby",
}
SHIPPING = {  # method -> business days
    "standard shipping": "5 business days", "express shipping": "2 business days",
    "overnight shipping": "1 business day", "economy shipping": "8 business days",
    "international shipping": "12 business days",
}
HOURS = {  # day -> opening hours of the (fictional) store
    "Monday": "9 am to 6 pm", "Tuesday": "9 am to 6 pm", "Wednesday": "9 am to 8 pm",
    "Thursday": "9 am to 6 pm", "Friday": "9 am to 9 pm", "Saturday": "10 am to 5 pm",
    "Sunday": "11 am to 4 pm",
}
CARE = {  # product -> care instruction
    "wool sweater": "wash it by hand in cold water", "cotton shirt": "wash it in warm water",
    "leather bag": "wipe it with a dry cloth", "cast iron pan": "dry it and rub it with oil",
    "wooden table": "polish it with wax once a month", "silk scarf": "have it dry cleaned",
    "rain jacket": "hang it up to dry away from heat", "glass vase": "rinse it with warm water",
}
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve"]

# --------------------------------------------------------------------------------------------
# Grammar pieces
# --------------------------------------------------------------------------------------------

_GREET_SYS = [
    "Hello, thank you for contacting the help desk. How can I help you today?",
    "Hi, welcome to customer support. What can I do for you?",
    "Good day, you are chatting with the support team. How may I help?",
    "Thanks for reaching out. What can I help you with today?",
]
_THANKS_USR = ["Thank you, that helps a lot.", "Great, thanks for your help.", "Perfect, thank you.",
               "That answers my question, thanks.", "Okay, thank you very much."]
_BYE_SYS = ["You are welcome. Have a nice day!", "Happy to help. Is there anything else?",
            "Glad I could help. Goodbye!", "You are welcome. Take care!"]
_ROLES = ["the teacher", "a farmer", "the baker", "a student", "the driver", "a gardener",
          "the nurse", "a painter", "the chef", "a traveller", "the librarian", "a carpenter"]
_VERBS = ["carried", "cleaned", "found", "fixed", "opened", "painted", "moved", "checked",
          "washed", "counted", "sorted", "wrapped"]
_OBJECTS = ["the box", "a basket", "the old chair", "a small lamp", "the garden gate", "a blue cup",
            "the map", "a wooden door", "the heavy bag", "a red kettle", "the window", "a bookshelf"]
_PLACES = ["in the kitchen", "near the river", "at the market", "in the barn", "by the window",
           "in the garden", "at the station", "in the library", "on the hill", "at the shop"]
_TIMES = ["in the morning", "after lunch", "in the evening", "before dinner", "on the weekend",
          "at noon", "late at night", "early on Monday"]
_WEATHER = ["sunny", "cloudy", "rainy", "windy", "foggy", "cold", "warm", "snowy"]
# A wider everyday vocabulary for simple descriptive sentences (so the BPE learns common subwords).
_NOUNS = (
    "apple bread bridge bucket candle carpet castle cloud coat corner cottage field flower forest "
    "fountain garden glove hammer harbour island jacket journey kettle kitchen ladder lantern letter "
    "meadow mirror mountain needle notebook ocean orchard package painting pencil pillow planet pocket "
    "puzzle railway ribbon river rocket saddle school season shadow shelf shovel signal sketch "
    "spoon staircase stone story street summer sweater table teacup theatre thunder ticket tower "
    "tractor tunnel umbrella valley village violin wagon wallet wardrobe whistle window winter "
    "workshop bottle button camera engine feather guitar helmet island kitten lemon market museum "
    "oven parcel picture printer quilt recipe sandwich scissors backpack blanket calendar compass "
    "desert factory harvest machine morning network picnic platform question rainbow sunset "
    "telescope village weekend animal balloon butter chimney diamond elephant festival gallery"
).split()
_ADJECTIVES = (
    "bright quiet heavy gentle narrow ancient busy careful clever curious distant empty famous fresh "
    "friendly golden grand green honest huge modern narrow neat noisy ordinary patient perfect plain "
    "polite proud rapid rare rough round shiny silent simple smooth soft solid steady strange strong "
    "sturdy sudden sweet tall tidy tiny useful warm wide wild wooden young yellow calm crisp dusty"
).split()
_PAST_VERBS = (
    "admired borrowed built carried changed chose cleaned collected covered delivered described "
    "discovered drew explained filled followed gathered handled imagined improved joined kept "
    "lifted listened measured mended noticed ordered packed planned polished prepared protected "
    "raised reached repaired returned shared showed studied touched travelled visited watched"
).split()
_PREPOSITIONS = ["near", "behind", "beside", "under", "above", "inside", "across", "around",
                 "beyond", "along"]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _dialog(r: SplitMix64) -> str:
    turns: list[str] = ["SYS: " + r.choice(_GREET_SYS)]
    topic = r.below(6)
    if topic == 0:
        day = r.choice(list(HOURS))
        turns.append("USR: " + r.choice([f"What are your opening hours on {day}?",
                                         f"When is the store open on {day}?",
                                         f"Are you open on {day}?"]))
        turns.append(f"SYS: On {day} the store is open from {HOURS[day]}.")
    elif topic == 1:
        method = r.choice(list(SHIPPING))
        turns.append("USR: " + r.choice([f"How long does {method} take?",
                                         f"I chose {method}. When will my package arrive?",
                                         f"What is the delivery time for {method}?"]))
        turns.append(f"SYS: {_cap(method)} takes {SHIPPING[method]}.")
        if r.chance(50):
            turns.append("USR: Can I track the package?")
            turns.append("SYS: Yes, you can follow it on the orders page of your account.")
    elif topic == 2:
        item = r.choice(list(CARE))
        turns.append("USR: " + r.choice([f"How should I clean my new {item}?",
                                         f"What is the best way to care for a {item}?"]))
        turns.append(f"SYS: For a {item}, {CARE[item]}.")
    elif topic == 3:
        days = r.choice([14, 30, 60])
        turns.append("USR: " + r.choice(["Can I return an item?", "What is your return policy?",
                                         "I would like to send something back."]))
        turns.append(f"SYS: You can return unused items within 30 days. Refunds take {r.below(5) + 3} "
                     f"business days to appear.")
        if days != 30:
            turns.append(f"USR: What if it has been {days} days?")
            turns.append("SYS: " + ("Then it is still within the return window."
                                    if days < 30 else "Then we can offer store credit instead."))
    elif topic == 4:
        turns.append("USR: " + r.choice(["I forgot my password.", "I cannot log in to my account.",
                                         "How do I reset my password?"]))
        n = r.below(3) + 1
        turns.append(f"SYS: Click on the reset link on the sign in page. The link is valid for {n} "
                     f"hour{'s' if n > 1 else ''}.")
        turns.append("USR: " + r.choice(["I did not get the email.", "It worked, thanks.",
                                         "Where is the reset link?"]))
        turns.append("SYS: " + r.choice(["Please check your spam folder and wait a few minutes.",
                                         "Great, you are all set.",
                                         "It is just below the password field."]))
    else:
        turns.append("USR: " + r.choice(["Which payment methods do you accept?",
                                         "Can I pay with a gift card?"]))
        turns.append("SYS: We accept cards, bank transfer and gift cards. Gift cards never expire.")
    turns.append("USR: " + r.choice(_THANKS_USR))
    turns.append("SYS: " + r.choice(_BYE_SYS))
    return "\n".join(turns)


# --------------------------------------------------------------------------------------------
# Values in neutral contexts: numbers, codes, names, addresses (none in a fine-tuning format)
# --------------------------------------------------------------------------------------------

# Formats of the fine-tuning values (lowrankdp.data.generators): a drawn code matching any of
# these, anywhere, is redrawn. Checked again on the whole text by the tests.
FORBIDDEN_PATTERNS = (
    r"\d{3}-\d{5}-\d{4}",               # CustomerSim order number
    r"\d{3}[-. ]?\d{3}[-. ]?\d{4}",     # phone, all separators (also any 10+ digit run)
    r"\(\d{3}\) ?\d{3}",                # phone with area code in brackets
    r"\d{3}-\d{2}-\d{4}",               # SSN
    r"\d{4}-\d{2}-\d{2}",               # ISO date
    r"\d{1,2}/\d{1,2}/\d{4}",           # US date
    r"\b[A-Z0-9]{10}\b",                # tracking number
    r"@",                               # e-mail
)
_FORBIDDEN_RE = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN_PATTERNS))
US_STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI UM".split())

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t",
           "tr", "v", "w", "z", "th", "sh", "j", "c", "ch"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ea", "y"]
_CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "nd", "th", "ck", "tt", "ll", "rd", "x"]
_NAME_ENDS = ["", "", "", "a", "el", "in", "on", "is", "ar", "en", "wyn", "ith", "ora", "ius"]
_SURNAME_ENDS = ["", "", "ley", "son", "ford", "wick", "mere", "dale", "ton", "by", "hart", "well",
                 "ridge", "stone", "more", "holt"]
_STREET_KINDS = ["Street", "Road", "Lane", "Avenue", "Way", "Row", "Close", "Terrace", "Drive",
                 "Place", "Hill", "Walk", "Court", "Square", "Gardens"]
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"


def _syllables(r: SplitMix64, n: int) -> str:
    out = ""
    for _ in range(n):
        out += r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS)
    return out


def _given_name(r: SplitMix64) -> str:
    return _cap(_syllables(r, 1 + r.below(2)) + r.choice(_NAME_ENDS))


def _surname(r: SplitMix64) -> str:
    return _cap(_syllables(r, 1 + r.below(2)) + r.choice(_SURNAME_ENDS))


def _full_name(r: SplitMix64) -> str:
    if r.chance(10):
        return f"{_given_name(r)} {_given_name(r)[0]}. {_surname(r)}"
    return f"{_given_name(r)} {_surname(r)}"


def _town(r: SplitMix64) -> str:
    k = r.below(4)
    if k == 0:
        return f"{r.choice(['North', 'South', 'Old', 'New', 'Upper', 'Little'])} {_surname(r)}"
    if k == 1:
        return _cap(_syllables(r, 1) + r.choice(["ton", "by", "field", "mouth", "haven", "burgh", "stead"]))
    return _cap(_syllables(r, 2 + r.below(2)))


def _clean(r: SplitMix64, make) -> str:
    """Draw ``make(r)`` until it matches none of the fine-tuning formats."""
    while True:
        v = make(r)
        if not _FORBIDDEN_RE.search(v):
            return v


def _digits(r: SplitMix64, n: int, *, lead: bool = True) -> str:
    first = str(1 + r.below(9)) if lead else str(r.below(10))
    return first + "".join(str(r.below(10)) for _ in range(n - 1))


def _region(r: SplitMix64) -> str:
    while True:
        code = r.choice(_UPPER) + r.choice(_UPPER)
        if code not in US_STATE_CODES:
            return code


def _address(r: SplitMix64) -> str:
    def make(r):
        street = f"{1 + r.below(r.choice([20, 200, 2000, 20000]))} {r.choice([_surname, _given_name])(r)} {r.choice(_STREET_KINDS)}"
        if r.chance(25):
            street += f", {r.choice(['Flat', 'Unit', 'Floor', 'Room'])} {1 + r.below(r.choice([10, 100, 1000]))}"
        k = r.below(3)
        if k == 0:
            return f"{street}, {_town(r)}"
        if k == 1:
            return f"{street}, {_town(r)}, {_region(r)} {_digits(r, r.choice([4, 5, 5, 6]), lead=False)}"
        return f"{street}, {_town(r)} {_digits(r, r.choice([4, 5, 6]), lead=False)}"
    return _clean(r, make)


def _digit_code(r: SplitMix64) -> str:
    """Dash- (sometimes slash- or space-) separated digit groups of varied lengths."""
    def make(r):
        n = 1 + r.below(4)
        sep = r.choice(["-", "-", "-", "/", " ", ""]) if n > 1 else ""
        return sep.join(_digits(r, 1 + r.below(6), lead=False) for _ in range(n))
    return _clean(r, make)


def _alnum_code(r: SplitMix64) -> str:
    def make(r):
        parts = []
        for _ in range(1 + r.below(3)):
            n = 2 + r.below(7)
            parts.append("".join(r.choice(_UPPER) if r.chance(50) else r.choice(_DIGITS) for _ in range(n)))
        return "-".join(parts) if r.chance(60) else "".join(parts)
    return _clean(r, make)


def _code(r: SplitMix64) -> str:
    return _digit_code(r) if r.chance(50) else _alnum_code(r)


def _number(r: SplitMix64) -> str:
    k = r.below(4)
    if k == 0:
        return str(1 + r.below(100))
    if k == 1:
        return str(1 + r.below(1000))
    if k == 2:
        return str(1 + r.below(100000))
    return f"{1 + r.below(999)},{r.below(1000):03d}"


def _time(r: SplitMix64) -> str:
    if r.chance(50):
        return f"{r.below(24):02d}:{r.below(60):02d}"
    return f"{1 + r.below(12)}:{r.below(60):02d} {r.choice(['am', 'pm'])}"


_CODE_NAMES = ["reference", "booking reference", "ticket number", "membership number", "item code",
               "catalogue number", "serial number", "case number", "voucher code", "batch number",
               "model number", "locker code", "invoice reference", "claim number"]
_THINGS = ["jars", "boxes", "books", "chairs", "lamps", "bottles", "sheep", "trees", "stamps",
           "bricks", "letters", "tickets", "visitors", "bicycles", "apples", "pages"]


def _value_sentence(r: SplitMix64) -> str:
    kind = r.below(12)
    if kind == 0:
        return r.choice([f"The meeting is in room {_number(r)}.", f"Please go to room {r.choice(_UPPER)}{1 + r.below(999)}.",
                         f"The class moved to room {1 + r.below(500)} on floor {1 + r.below(12)}."])
    if kind == 1:
        return r.choice([f"The recipe is on page {1 + r.below(600)}.", f"See page {1 + r.below(900)} of the manual.",
                         f"Chapter {1 + r.below(40)} starts on page {1 + r.below(700)}."])
    if kind == 2:
        return r.choice([f"The shop sold {_number(r)} {r.choice(_THINGS)} {r.choice(_TIMES)}.",
                         f"There were {_number(r)} {r.choice(_THINGS)} {r.choice(_PLACES)}.",
                         f"{_full_name(r)} counted {_number(r)} {r.choice(_THINGS)}."])
    if kind == 3:
        y = 1500 + r.below(526)
        return r.choice([f"The {r.choice(_NOUNS)} was built in {y}.", f"In {y} {_full_name(r)} opened a small {r.choice(_NOUNS)} shop.",
                         f"{_town(r)} was founded in {y}."])
    if kind == 4:
        return r.choice([f"The train to {_town(r)} leaves at {_time(r)} from platform {1 + r.below(20)}.",
                         f"The museum opens at {_time(r)}.", f"We met {r.choice(_PLACES)} at {_time(r)}."])
    if kind == 5:
        c = r.choice(_CODE_NAMES)
        return r.choice([f"The {c} is {_code(r)}.", f"Write down the {c} {_code(r)}.",
                         f"Your {c} is {_code(r)}. Keep it for later.",
                         f"{_cap(c)}: {_code(r)}"])
    if kind == 6:
        return r.choice([f"{_full_name(r)} {r.choice(_PAST_VERBS)} {r.choice(_OBJECTS)} {r.choice(_PLACES)}.",
                         f"The book was written by {_full_name(r)}.",
                         f"{_full_name(r)} and {_full_name(r)} are friends.",
                         f"My neighbour is called {_full_name(r)}.",
                         f"{_given_name(r)} {r.choice(_VERBS)} {r.choice(_OBJECTS)} {r.choice(_TIMES)}."])
    if kind == 7:
        return r.choice([f"The library is at {_address(r)}.", f"{_full_name(r)} lives at {_address(r)}.",
                         f"The letter went to {_address(r)}.", f"The {r.choice(_NOUNS)} museum moved to {_address(r)}.",
                         f"Address: {_address(r)}"])
    if kind == 8:
        return f"{_full_name(r)} lives in {_town(r)} and works at the {r.choice(_NOUNS)} shop on {_surname(r)} {r.choice(_STREET_KINDS)}."
    if kind == 9:
        return f"The parcel with code {_alnum_code(r)} is on shelf {_digit_code(r)}."
    if kind == 10:
        a, b = 1 + r.below(1000), 1 + r.below(1000)
        return r.choice([f"{a} plus {b} is {a + b}.", f"Question: What is {a} plus {b}?\nAnswer: {a + b}"])
    return f"The {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)} costs {1 + r.below(500)}.{r.below(100):02d} coins."


def _booking_dialog(r: SplitMix64) -> str:
    name = _full_name(r)
    first = name.split()[0]
    c = r.choice(_CODE_NAMES)
    turns = ["SYS: " + r.choice(_GREET_SYS)]
    turns.append("USR: " + r.choice([f"Hi, this is {name}. I have a question about my {c}.",
                                     f"Hello, my name is {name}. Can you check my {c}?",
                                     f"I would like to ask about a {c}."]))
    if r.chance(50):
        turns.append("SYS: " + r.choice(["Sure, who am I speaking with?", "May I have your name, please?"]))
        turns.append("USR: " + r.choice([f"It is {name}.", f"{name}.", f"My name is {name}."]))
    turns.append("SYS: " + r.choice([f"Thanks, {first}. What is the {c}?", f"Could you give me the {c}?"]))
    turns.append("USR: " + r.choice([f"The {c} is {_code(r)}.", f"It is {_code(r)}.", f"{_code(r)}"]))
    if r.chance(40):
        turns.append("SYS: And which address is it for?")
        turns.append("USR: " + r.choice([f"It is {_address(r)}.", f"{_address(r)}"]))
    turns.append("SYS: " + r.choice([f"I found it. Your new reference is {_code(r)}.",
                                     f"Thank you. It is booked for {_time(r)} in room {1 + r.below(400)}.",
                                     f"All set. Please bring the code {_alnum_code(r)} with you."]))
    turns.append("USR: " + r.choice(_THANKS_USR))
    turns.append("SYS: " + r.choice(_BYE_SYS))
    return "\n".join(turns)


def _fact_sentence(r: SplitMix64) -> str:
    kind = r.below(8)
    if kind == 0:
        k = r.choice(list(COLOURS))
        return r.choice([f"{_cap(k)} is {COLOURS[k]}.", f"The colour of {k} is {COLOURS[k]}.",
                         f"Question: What colour is {k}?\nAnswer: {COLOURS[k]}"])
    if kind == 1:
        k = r.choice(list(SOUNDS))
        return r.choice([f"{_cap(k)} says {SOUNDS[k]}.", f"The sound of {k} is {SOUNDS[k]}.",
                         f"Question: What sound does {k} make?\nAnswer: {SOUNDS[k]}"])
    if kind == 2:
        k = r.choice(list(OPPOSITES))
        return r.choice([f"The opposite of {k} is {OPPOSITES[k]}.",
                         f"{_cap(k)} and {OPPOSITES[k]} are opposites.",
                         f"Question: What is the opposite of {k}?\nAnswer: {OPPOSITES[k]}"])
    if kind == 3:
        k = r.choice(list(COUNTS))
        v = COUNTS[k]
        word = _NUMBER_WORDS[v] if v < len(_NUMBER_WORDS) else str(v)
        return r.choice([f"There are {v} {k}.", f"There are {word} {k}.",
                         f"Question: How many {k} are there?\nAnswer: {v}"])
    if kind == 4:
        k = r.choice(list(CAPITALS))
        return r.choice([f"The capital of {k} is {CAPITALS[k]}.",
                         f"{CAPITALS[k]} is the capital city of {k}.",
                         f"Question: What is the capital of {k}?\nAnswer: {CAPITALS[k]}"])
    if kind == 5:
        a, b = r.below(20), r.below(20)
        return r.choice([f"{a} plus {b} is {a + b}.", f"Question: What is {a} plus {b}?\nAnswer: {a + b}"])
    if r.chance(50):
        return (f"{_cap(r.choice(_ROLES))} {r.choice(_VERBS)} {r.choice(_OBJECTS)} {r.choice(_PLACES)} "
                f"{r.choice(_TIMES)}. The day was {r.choice(_WEATHER)}.")
    return (f"{_cap(r.choice(['the', 'a', 'one', 'every']))} {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)} "
            f"{r.choice(_PAST_VERBS)} the {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)} "
            f"{r.choice(_PREPOSITIONS)} the {r.choice(_NOUNS)}.")


def _paragraph(r: SplitMix64) -> str:
    """2–5 sentences; question/answer pairs stand on their own lines."""
    out = ""
    prev_qa = False
    values = r.chance(50)
    for i in range(r.below(4) + 2):
        s = _value_sentence(r) if values and r.chance(40) else _fact_sentence(r)
        qa = "\n" in s
        out += s if i == 0 else ("\n" if (qa or prev_qa) else " ") + s
        prev_qa = qa
    return out


_CARRIERS = ["the courier", "our delivery team", "the post", "the van driver", "the local depot"]
_STATUSES = ["is on its way", "left our warehouse this morning", "is at the local depot",
             "is out for delivery", "is waiting at the pick-up point", "was handed to the courier"]
_JOBS = ["baker", "carpenter", "librarian", "teacher", "gardener", "engineer", "nurse", "painter",
         "accountant", "chef", "pilot", "tailor", "architect", "translator", "pharmacist", "plumber"]
_FIRMS = ["Works", "Trading", "Studio", "Partners", "Supplies", "Group", "Workshop", "Company"]
_HOBBIES = ["gardening", "chess", "painting", "hiking", "baking", "birdwatching", "cycling",
            "knitting", "fishing", "photography", "woodwork", "singing in a choir"]


def _firm(r: SplitMix64) -> str:
    return f"{_surname(r)} {r.choice(_FIRMS)}"


def _tracking_dialog(r: SplitMix64) -> str:
    """A package-tracking dialog in the SYS:/USR: layout of the fine-tuning dialogs, with our own wording and
    values from this file (names from the syllable generator, codes and addresses that match no fine-tuning
    format)."""
    name = _full_name(r)
    first = name.split()[0]
    turns = ["SYS: " + r.choice(_GREET_SYS)]
    turns.append("USR: " + r.choice(["Hello, my package has not arrived yet. Can you track it?",
                                     f"Hi, this is {name}. I am waiting for a delivery.",
                                     "I would like to know where my order is."]))
    asks = [("name", "May I have your full name, please?", f"It is {name}."),
            ("order", "Could you give me your order code?", f"The order code is {_digit_code(r)}."),
            ("contact", "Which contact number is on the account?", f"It is {_digit_code(r)}."),
            ("address", "Please confirm the delivery address.", f"It goes to {_address(r)}.")]
    for _key, question, answer in r.sample(asks, 2 + r.below(3)):
        turns.append("SYS: " + question)
        turns.append("USR: " + answer)
    turns.append(f"SYS: Thank you, {first}. Your package {r.choice(_STATUSES)} with {r.choice(_CARRIERS)}; "
                 f"the parcel code is {_alnum_code(r)}. It should arrive within {2 + r.below(9)} business days.")
    turns.append("USR: " + r.choice(_THANKS_USR))
    turns.append("SYS: " + r.choice(_BYE_SYS))
    return "\n".join(turns)


def _biography(r: SplitMix64) -> str:
    """A short biography of a made-up person (name, birthplace and year, job, employer, address, hobby): the
    layout of the fine-tuning biographies with none of their value formats (no dates, phones, e-mails, IDs)."""
    name = _full_name(r)
    first = name.split()[0]
    year = 1940 + r.below(66)
    parts = [r.choice([f"{name} was born in {_town(r)} in {year}.",
                       f"{name} grew up in {_town(r)}, where the family lived from {year}."]),
             r.choice([f"{first} works as a {r.choice(_JOBS)} at {_firm(r)}.",
                       f"After school, {first} joined {_firm(r)} as a {r.choice(_JOBS)}."]),
             r.choice([f"{first} lives at {_address(r)}.", f"These days {first} lives in {_town(r)}."]),
             r.choice([f"In free time {first} enjoys {r.choice(_HOBBIES)}.",
                       f"{first} has a keen interest in {r.choice(_HOBBIES)}."])]
    if r.chance(40):
        parts.append(f"{first}'s member code is {_code(r)}.")
    order = r.sample(range(1, len(parts)), len(parts) - 1)
    return " ".join([parts[0]] + [parts[i] for i in order])


def generate_documents(seed: int, n_docs: int) -> Iterator[str]:
    """Yield ``n_docs`` documents: package-tracking dialogs (12 %), biographies (12 %), other dialogs (16 %, a third
    of them bookings with names and codes) and paragraphs of generic sentences (60 %; half of them mix in
    sentences with numbers, codes, names and addresses)."""
    r = SplitMix64(seed)
    for _ in range(n_docs):
        k = r.below(100)
        if k < 12:
            yield _tracking_dialog(r)
        elif k < 24:
            yield _biography(r)
        elif k < 40:
            yield _booking_dialog(r) if r.chance(33) else _dialog(r)
        else:
            yield _paragraph(r)


@dataclass(frozen=True)
class Corpus:
    """Train and held-out documents plus their SHA-256 (over the JSON of both lists)."""

    train: tuple[str, ...]
    heldout: tuple[str, ...]
    sha256: str
    seed: int

    def describe(self) -> dict:
        return {
            "generator": "lowrankdp.models.corpus", "generator_version": GENERATOR_VERSION,
            "seed": self.seed, "sha256": self.sha256, "n_train_docs": len(self.train),
            "n_heldout_docs": len(self.heldout), "train_chars": sum(map(len, self.train)),
            "heldout_chars": sum(map(len, self.heldout)),
        }


def make_corpus(*, seed: int = 0, n_train_docs: int, n_heldout_docs: int) -> Corpus:
    """The pretraining corpus: two independent streams (train, held-out) from ``seed``."""
    train = tuple(generate_documents((seed * 7919 + _TRAIN_STREAM) & _MASK, n_train_docs))
    heldout = tuple(generate_documents((seed * 7919 + _HELDOUT_STREAM) & _MASK, n_heldout_docs))
    payload = json.dumps({"version": GENERATOR_VERSION, "train": train, "heldout": heldout},
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Corpus(train, heldout, hashlib.sha256(payload).hexdigest(), seed)


# --------------------------------------------------------------------------------------------
# Multiple-choice knowledge probe
# --------------------------------------------------------------------------------------------

def multiple_choice_items(*, seed: int = 0, n_choices: int = 4) -> list[dict]:
    """One question per fact (colours, sounds, opposites, counts, capitals, shipping times).

    Each item: ``{"id", "question", "choices", "answer"}`` with ``answer`` the index of the
    correct choice; distractors are other values of the same table. Deterministic in ``seed``.
    """
    r = SplitMix64((seed * 7919 + _MC_STREAM) & _MASK)
    tables = [
        ("colour", COLOURS, "What colour is {k}?"),
        ("sound", SOUNDS, "What sound does {k} make?"),
        ("opposite", OPPOSITES, "What is the opposite of {k}?"),
        ("count", {k: str(v) for k, v in COUNTS.items()}, "How many {k} are there?"),
        ("capital", CAPITALS, "What is the capital of {k}?"),
        ("shipping", SHIPPING, "How long does {k} take?"),
    ]
    items = []
    for kind, table, template in tables:
        values = sorted(set(table.values()))
        for i, (k, v) in enumerate(table.items()):
            others = [x for x in values if x != v]
            choices = r.sample(others, min(n_choices - 1, len(others)))
            pos = r.below(len(choices) + 1)
            choices.insert(pos, v)
            items.append({"id": f"{kind}-{i}", "question": template.format(k=k), "choices": choices,
                          "answer": pos})
    return items


def write_multiple_choice_task(path: str | Path, *, seed: int = 0) -> Path:
    """Write :func:`multiple_choice_items` as JSONL (one item a line); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for item in multiple_choice_items(seed=seed):
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return path
