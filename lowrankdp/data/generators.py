"""Seeded generators of synthetic corpora with gold personal-data spans ([RPUE]; docs/theory.md §8.3).

* ``customersim``: package-tracking customer-service dialogs (``SYS:``/``USR:`` turns, one per line).
  Personal values: ``name`` (full name, and the first name when the agent addresses the user),
  ``order_number`` (``ddd-ddddd-dddd``), ``phone`` (``ddd-ddd-dddd`` with varying separators),
  ``address`` (street, city, state, ZIP), ``tracking_number`` (10 upper-case letters/digits, given
  by the system). Default sizes 10,000 / 1,000 / 1,000.
* ``synbio``: short biographies of fictional people. Personal values: ``name`` (full, first or last),
  ``birth_date``, ``birthplace``, ``address``, ``email``, ``phone``, ``employer``, ``ssn``
  (``ddd-dd-dddd``). Default 5,000 records split 4,000 / 500 / 500.

Values come from Faker (``en_US``, a dedicated instance seeded per split); templates, phrasings and
formats are ours and chosen with a ``random.Random`` seeded from a string (``sha512``-based, so
independent of ``PYTHONHASHSEED``). The span of every value is recorded while the text is built, so
``text[start:end]`` is the value by construction. Each split has its own random streams, so changing
one split's size does not change the records of the others.

Canaries (Secret-Sharer, [CTW+19]): ``canary_repeats`` *extra* training records whose whole text is
``"My ID is {secret}."`` with ``secret`` drawn uniformly from ``canary_digits`` decimal digits
(candidate space ``10**canary_digits``, default 10⁶). They are inserted at random positions of the
training split, flagged ``"canary": true``, carry one span of type ``"canary"`` over the secret, and
are listed in ``meta.json["canary"]["record_ids"]``. So ``train.jsonl`` holds ``sizes["train"] +
canary_repeats`` lines; ``meta.json["sizes"]`` gives the actual line counts and
``meta.json["requested_sizes"]`` the regular-record counts.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import string
from pathlib import Path
from typing import Any, Callable, Mapping

from .._validate import check_choice, check_int
from .records import Record, Span
from .schema import SCHEMA_VERSION, SPLITS, Dataset, check_dataset_output, write_dataset

__all__ = ["generate", "generate_dataset", "DEFAULT_SIZES", "GENERATORS", "CANARY_TEMPLATE"]

GENERATOR_VERSION = 1
FAKER_LOCALE = "en_US"
GENERATORS = ("customersim", "synbio")
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "customersim": {"train": 10_000, "valid": 1_000, "test": 1_000},
    "synbio": {"train": 4_000, "valid": 500, "test": 500},
}
CANARY_TEMPLATE = "My ID is {secret}."
_FORMATTER = string.Formatter()


def _seed_int(*parts: Any) -> int:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big")


class _Builder:
    """Concatenates text pieces and records the span of every personal value as it is inserted."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.n = 0

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.n += len(s)

    def value(self, typ: str, v: str) -> None:
        self.spans.append(Span(self.n, self.n + len(v), typ))
        self.add(v)

    def fill(self, template: str, slots: Mapping[str, Any]) -> None:
        """``template`` with ``{slot}`` fields; a slot is a plain string or a ``(type, value)`` pair."""
        for literal, field, _spec, _conv in _FORMATTER.parse(template):
            if literal:
                self.add(literal)
            if field is None:
                continue
            v = slots[field]
            if isinstance(v, tuple):
                self.value(*v)
            else:
                self.add(v)

    def text(self) -> str:
        return "".join(self.parts)


# ------------------------------------------------------------------------------------------- values

def _phone(rng: random.Random) -> str:
    a = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    b = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    c = f"{rng.randrange(10_000):04d}"
    fmt = rng.choice(["{a}-{b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a} {b} {c}", "({a}) {b}-{c}",
                      "{a}{b}{c}"])
    return fmt.format(a=a, b=b, c=c)


def _order_number(rng: random.Random) -> str:
    return f"{rng.randrange(1000):03d}-{rng.randrange(100_000):05d}-{rng.randrange(10_000):04d}"


def _tracking_number(rng: random.Random) -> str:
    letters, digits = string.ascii_uppercase, string.digits
    while True:
        t = "".join(rng.choice(letters + digits) for _ in range(10))
        if sum(ch.isdigit() for ch in t) >= 2 and sum(ch.isalpha() for ch in t) >= 2:
            return t


def _address(fake) -> str:
    return (f"{fake.street_address()}, {fake.city()}, "
            f"{fake.state_abbr(include_territories=False)} {fake.zipcode()}")


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _birth_date(rng: random.Random) -> str:
    y = rng.randint(1940, 2004)
    m = rng.randint(1, 12)
    dim = 29 if (m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else _DAYS_IN_MONTH[m - 1]
    d = rng.randint(1, dim)
    fmt = rng.choice(["{M} {d}, {y}", "{M} {d}, {y}", "{d} {M} {y}", "{mm}/{dd}/{y}", "{y}-{mm}-{dd}"])
    return fmt.format(M=_MONTHS[m - 1], d=d, y=y, mm=f"{m:02d}", dd=f"{d:02d}")


def _ssn(rng: random.Random) -> str:
    area = rng.randint(1, 898)
    area += area >= 666  # 666 is never issued
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _email(rng: random.Random, fake, first: str, last: str) -> str:
    f = re.sub(r"[^a-z]", "", first.lower()) or "user"
    l = re.sub(r"[^a-z]", "", last.lower()) or "mail"
    local = rng.choice([f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}_{l}", f"{f}{rng.randint(1, 99)}",
                        f"{l}.{f}", f"{f}.{l}{rng.randint(1, 999)}"])
    return f"{local}@{fake.free_email_domain()}"


# --------------------------------------------------------------------------------------- customersim

_CS_GREET = [
    "Thank you for contacting {brand} customer support. How can I help you today?",
    "Hello, you've reached {brand} package tracking. What can I do for you?",
    "Hi, welcome to {brand} support. How may I assist you?",
    "Good day! This is the {brand} help desk. How can I help?",
    "Thanks for reaching out to {brand}. What seems to be the problem?",
]
_CS_BRANDS = ["QuickShip", "ParcelPoint", "SwiftPost", "BoxRoute", "Courier One", "ShipRight"]
_CS_OPEN = [
    "Hi, I'm trying to find out where my package is.",
    "Hello, my order hasn't arrived yet and I'd like to track it.",
    "I ordered something last week and I still don't have a tracking number.",
    "Hi there, can you tell me the status of my delivery?",
    "My package was supposed to arrive {day} but it never showed up.",
    "I need help tracking a parcel, please.",
]
_CS_OPEN_WITH_NAME = [
    "Hi, this is {name}. I'm waiting on a package and want to check on it.",
    "Hello, my name is {name} and my delivery is late.",
    "Hi, {name} here. Could you help me track an order?",
]
_CS_ASK = {
    "name": ["May I have your full name, please?", "Could you tell me your first and last name?",
             "Sure, who am I speaking with?", "I can help with that. What is the name on the order?"],
    "order_number": ["{ack}Could you give me your order number?", "{ack}What's the order number?",
                     "{ack}Please provide the order number from your confirmation email.",
                     "{ack}Do you have the order number handy?"],
    "phone": ["{ack}What phone number is associated with the account?",
              "{ack}Can I get a contact phone number?",
              "{ack}To verify your identity, please tell me your phone number.",
              "{ack}What's the best number to reach you at?"],
    "address": ["{ack}What is the delivery address?", "{ack}Can you confirm the shipping address?",
                "{ack}Where was the package supposed to be delivered?",
                "{ack}Please confirm the address on the order."],
}
_CS_ACK = ["", "Thanks. ", "Thank you. ", "Got it. ", "Thanks, {first}. ", "Thank you, {first}. ",
           "Great, {first}. ", "Okay. "]
_CS_GIVE = {
    "name": ["My name is {name}.", "It's {name}.", "{name}.", "Sure, it's {name}.", "This is {name}.",
             "The order is under {name}.", "I'm {name}."],
    "order_number": ["My order number is {order_number}.", "It's {order_number}.", "{order_number}",
                     "Sure, the order number is {order_number}.", "I have it here: {order_number}.",
                     "Order {order_number}."],
    "phone": ["My phone number is {phone}.", "It's {phone}.", "{phone}", "You can reach me at {phone}.",
              "Sure, {phone}.", "The number on the account is {phone}."],
    "address": ["It's {address}.", "The address is {address}.", "{address}",
                "It should go to {address}.", "Please send it to {address}.",
                "I live at {address}."],
}
_CS_GIVE_TWO = [
    "My order number is {order_number} and my phone number is {phone}.",
    "Sure: order {order_number}, phone {phone}.",
    "The order number is {order_number}. You can call me at {phone}.",
]
_CS_TRACK = [
    "I found your order. Your tracking number is {tracking_number}.",
    "Thanks for waiting. The package is in transit with tracking number {tracking_number}.",
    "Your shipment has tracking number {tracking_number}; it should arrive within {n} business days.",
    "Here is your tracking number: {tracking_number}. It left our warehouse {day}.",
    "The parcel was delayed at our sorting center. You can follow it with tracking number "
    "{tracking_number}.",
]
_CS_USR_END = ["Great, thank you so much!", "Thanks for your help.", "Perfect, that's all I needed.",
               "Okay, I'll keep an eye on it.", "Can you read that back once more? Actually never mind, "
               "I wrote it down. Thanks!"]
_CS_SYS_END = ["You're welcome! Have a great day.", "Happy to help. Is there anything else?",
               "My pleasure, {first}. Goodbye!", "Glad I could help. Take care!",
               "You're welcome. Thank you for choosing {brand}."]
_DAYS = ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "yesterday",
         "last week", "two days ago"]


def _customersim_record(rng: random.Random, fake) -> tuple[str, list[Span]]:
    first, last = fake.first_name(), fake.last_name()
    name = f"{first} {last}"
    vals = {
        "name": ("name", name),
        "order_number": ("order_number", _order_number(rng)),
        "phone": ("phone", _phone(rng)),
        "address": ("address", _address(fake)),
        "tracking_number": ("tracking_number", _tracking_number(rng)),
    }
    common = {"brand": rng.choice(_CS_BRANDS), "day": rng.choice(_DAYS), "n": str(rng.randint(2, 7)),
              "first": ("name", first)}
    slots = {**vals, **common}
    b = _Builder()

    def turn(who: str, template: str) -> None:
        if b.n:
            b.add("\n")
        b.add(f"{who}: ")
        b.fill(template, slots)

    turn("SYS", rng.choice(_CS_GREET))
    named = rng.random() < 0.3
    turn("USR", rng.choice(_CS_OPEN_WITH_NAME if named else _CS_OPEN))
    asks = ["order_number", "phone", "address"]
    rng.shuffle(asks)
    if not named:
        asks.insert(0 if rng.random() < 0.8 else rng.randint(1, 3), "name")
    known_name = named
    i = 0
    while i < len(asks):
        item = asks[i]
        ack = rng.choice(_CS_ACK) if i else ""
        if "{first}" in ack and not known_name:
            ack = "Thanks. "
        turn("SYS", rng.choice(_CS_ASK[item]).replace("{ack}", ack))
        nxt = asks[i + 1] if i + 1 < len(asks) else None
        if {item, nxt} == {"order_number", "phone"} and rng.random() < 0.35:
            turn("USR", rng.choice(_CS_GIVE_TWO))
            i += 2
            continue
        turn("USR", rng.choice(_CS_GIVE[item]))
        known_name = known_name or item == "name"
        i += 1
    if rng.random() < 0.3:
        turn("SYS", "Let me look that up for you. One moment, please.")
        turn("USR", rng.choice(["Sure.", "Okay, thanks.", "No problem."]))
    turn("SYS", rng.choice(_CS_TRACK))
    turn("USR", rng.choice(_CS_USR_END))
    turn("SYS", rng.choice(_CS_SYS_END))
    return b.text(), b.spans


# -------------------------------------------------------------------------------------------- synbio

_SB_BIRTH = [
    "{name} was born on {birth_date} in {birthplace}.",
    "Born in {birthplace} on {birth_date}, {name} grew up with {n} siblings.",
    "{name} (born {birth_date}) is a native of {birthplace}.",
    "{birthplace} is where {name} was born, on {birth_date}.",
    "{name} came into the world on {birth_date}; the family lived in {birthplace} at the time.",
]
_SB_ADDRESS = [
    "{P} currently lives at {address}.", "{Pos} home address is {address}.",
    "These days {first} resides at {address}.", "Mail for {first} goes to {address}.",
    "{first} moved to {address} a few years ago.",
]
_SB_EMPLOYER = [
    "{P} works at {employer}.", "{first} has been employed by {employer} since {year}.",
    "After finishing school, {first} joined {employer} as a {job}.",
    "{employer} hired {first} in {year}.", "{first} is a {job} at {employer}.",
]
_SB_CONTACT = [
    "{P} can be reached by email at {email} or by phone at {phone}.",
    "{Pos} email address is {email}, and {pos} phone number is {phone}.",
    "To contact {first}, write to {email} or call {phone}.",
    "{first} lists {phone} as a phone number and {email} for email.",
]
_SB_SSN = [
    "{Pos} Social Security number is {ssn}.", "For official records, {first} uses the identifier {ssn}.",
    "{name_again}'s SSN is {ssn}.", "Tax documents list {pos} SSN as {ssn}.",
    "{first} was issued the number {ssn} by the Social Security Administration.",
]
_SB_FILLER = [
    "In {pos} spare time, {first} enjoys {hobby}.", "Friends describe {first} as {adj} and {adj2}.",
    "{P} has a keen interest in {hobby}.", "On weekends {last} often goes {hobby2}.",
]
_HOBBIES = ["gardening", "chess", "photography", "cooking", "birdwatching", "woodworking", "painting",
            "playing the guitar", "reading history books", "running marathons"]
_HOBBIES2 = ["hiking", "fishing", "cycling", "camping", "swimming", "sailing"]
_ADJ = ["curious", "patient", "generous", "cheerful", "thoughtful", "ambitious", "quiet", "funny"]


def _synbio_record(rng: random.Random, fake) -> tuple[str, list[Span]]:
    female = rng.random() < 0.5
    first = fake.first_name_female() if female else fake.first_name_male()
    last = fake.last_name()
    pron = {"P": "She" if female else "He", "Pos": "Her" if female else "His",
            "pos": "her" if female else "his"}
    slots: dict[str, Any] = {
        "name": ("name", f"{first} {last}"),
        "name_again": ("name", f"{first} {last}"),
        "first": ("name", first),
        "last": ("name", last),
        "birth_date": ("birth_date", _birth_date(rng)),
        "birthplace": ("birthplace", f"{fake.city()}, {fake.state()}"),
        "address": ("address", _address(fake)),
        "employer": ("employer", fake.company()),
        "email": ("email", _email(rng, fake, first, last)),
        "phone": ("phone", _phone(rng)),
        "ssn": ("ssn", _ssn(rng)),
        "year": str(rng.randint(1990, 2023)),
        "job": fake.job().split(",")[0].lower(),
        "n": rng.choice(["two", "three", "no", "four", "five"]),
        "hobby": rng.choice(_HOBBIES), "hobby2": rng.choice(_HOBBIES2),
        "adj": rng.choice(_ADJ), "adj2": rng.choice(_ADJ), **pron,
    }
    body = [rng.choice(_SB_ADDRESS), rng.choice(_SB_EMPLOYER), rng.choice(_SB_CONTACT),
            rng.choice(_SB_SSN)]
    if rng.random() < 0.6:
        body.append(rng.choice(_SB_FILLER))
    rng.shuffle(body)
    sentences = [rng.choice(_SB_BIRTH)] + body
    b = _Builder()
    for i, s in enumerate(sentences):
        if i:
            b.add(" ")
        b.fill(s, slots)
    return b.text(), b.spans


_RECORD_FNS: dict[str, Callable[[random.Random, Any], tuple[str, list[Span]]]] = {
    "customersim": _customersim_record,
    "synbio": _synbio_record,
}


# ------------------------------------------------------------------------------------------- driver

def _faker(seed_int: int):
    try:
        from faker import Faker
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("generating data needs Faker: pip install 'lowrankdp[data]'") from exc
    fake = Faker(FAKER_LOCALE)
    fake.seed_instance(seed_int)
    return fake


def generate_dataset(kind: str, *, seed: int = 0, sizes: Mapping[str, int] | None = None,
                     canary_repeats: int = 10, canary_digits: int = 6) -> Dataset:
    """Build the dataset in memory (see :func:`generate`)."""
    kind = check_choice("kind", kind, GENERATORS)
    seed = check_int("seed", seed, minimum=0)
    canary_repeats = check_int("canary_repeats", canary_repeats, minimum=0)
    canary_digits = check_int("canary_digits", canary_digits, minimum=1, maximum=18)
    req = dict(DEFAULT_SIZES[kind])
    if sizes is not None:
        for k, v in sizes.items():
            check_choice("sizes key", k, SPLITS)
            req[k] = check_int(f"sizes[{k!r}]", v, minimum=0)
    import faker as _faker_mod

    make = _RECORD_FNS[kind]
    splits: dict[str, list[Record]] = {}
    for split in SPLITS:
        rng = random.Random(f"lowrankdp:{kind}:{seed}:{split}")
        fake = _faker(_seed_int("lowrankdp-faker", kind, seed, split))
        recs = []
        for i in range(req[split]):
            text, spans = make(rng, fake)
            recs.append(Record(f"{kind}-{split}-{i:06d}", text, split, tuple(spans), False))
        splits[split] = recs

    canary_meta = None
    if canary_repeats > 0:
        rng = random.Random(f"lowrankdp:{kind}:{seed}:canary")
        space = 10 ** canary_digits
        secret = f"{rng.randrange(space):0{canary_digits}d}"
        prefix, suffix = CANARY_TEMPLATE.split("{secret}")
        text = prefix + secret + suffix
        span = Span(len(prefix), len(prefix) + len(secret), "canary")
        train = splits["train"]
        n_total = len(train) + canary_repeats
        positions = sorted(rng.sample(range(n_total), canary_repeats))
        canaries = [Record(f"{kind}-train-canary-{j:03d}", text, "train", (span,), True)
                    for j in range(canary_repeats)]
        merged: list[Record] = []
        it_reg, it_can = iter(train), iter(canaries)
        pos = set(positions)
        for p in range(n_total):
            merged.append(next(it_can) if p in pos else next(it_reg))
        splits["train"] = merged
        canary_meta = {
            "template": CANARY_TEMPLATE, "prefix": prefix, "suffix": suffix, "secret": secret,
            "alphabet": string.digits, "length": canary_digits, "space_size": space,
            "repeats": canary_repeats, "record_ids": [r.id for r in canaries],
            "insertion": "extra training records whose whole text is the canary sentence",
        }
    types = sorted({s.type for recs in splits.values() for r in recs for s in (r.spans or ())})
    meta = {
        "generator": kind,
        "seed": seed,
        "sizes": {s: len(splits[s]) for s in SPLITS},
        "schema_version": SCHEMA_VERSION,
        "canary": canary_meta,
        "requested_sizes": {s: req[s] for s in SPLITS},
        "span_types": types,
        "generator_version": GENERATOR_VERSION,
        "faker_locale": FAKER_LOCALE,
        "faker_version": getattr(_faker_mod, "VERSION", None),
    }
    return Dataset(splits, meta)


def generate(kind: str, *, out_dir: str | os.PathLike, seed: int = 0,
             sizes: Mapping[str, int] | None = None, canary_repeats: int = 10,
             canary_digits: int = 6) -> Path:
    """Generate ``kind`` ("customersim" or "synbio") into ``out_dir``; return the directory.

    ``sizes`` maps split → number of regular records (missing splits keep the defaults,
    :data:`DEFAULT_SIZES`); ``canary_repeats`` extra canary records are added to ``train``; the secret
    has ``canary_digits`` decimal digits (candidate space ``10**canary_digits``). Same arguments →
    byte-identical files (for a given Faker version, recorded in ``meta.json``). The directory is written
    atomically and must be new, empty or a dataset (see :func:`~.schema.write_dataset`); that is checked
    before generating.
    """
    check_dataset_output(out_dir)
    ds = generate_dataset(kind, seed=seed, sizes=sizes, canary_repeats=canary_repeats,
                          canary_digits=canary_digits)
    return write_dataset(ds, out_dir)
