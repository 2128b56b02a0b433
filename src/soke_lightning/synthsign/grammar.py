"""SynthSign grammar: sentence templates, spoken realisation (English / German / Chinese) and sign order.

A template draws a :class:`Clause` (roles: time, subject, verb, object, place, predicate, weather, negation,
question word). Each spoken language realises it with its own word order, inflection and function words that have
no sign ("the", "will", "wird", "了"); each sign language orders the same concepts by its own rule (topic-first
ASL, verb-final DGS, CSL SVO with late negation; modifiers after nouns and wh-words last everywhere). So text ->
sign is a reordering plus deletion, not a word-by-word map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from soke_lightning.synthsign.lexicon import BY_ID, CONCEPTS, OBJECT_GROUPS, PROPER, Concept, concepts_of

#: Template name -> probability of being drawn.
TEMPLATES: dict[str, float] = {
    "transitive": 0.26, "intransitive": 0.08, "motion": 0.12, "predicate": 0.10, "weather": 0.08,
    "yes_no": 0.10, "wh_object": 0.06, "wh_subject": 0.05, "wh_where": 0.04, "wh_when": 0.04, "wh_why": 0.03,
    "how_many": 0.04,
}

#: Sign order of the roles per sign language (a noun phrase is signed noun, adjective, numeral).
SIGN_ORDER: dict[str, tuple[str, ...]] = {
    "asl": ("time", "obj", "place", "weather_place", "subj", "neg", "verb", "pred", "weather", "wh"),
    "dgs": ("time", "subj", "obj", "place", "weather_place", "pred", "verb", "weather", "neg", "wh"),
    "csl": ("time", "subj", "verb", "obj", "place", "weather_place", "pred", "weather", "neg", "wh"),
}


@dataclass
class NounPhrase:
    head: Concept
    adj: Concept | None = None
    num: Concept | None = None

    @property
    def plural(self) -> bool:
        return self.head.category == "pronoun" and self.head.forms["person"].endswith("pl") or (
            self.num is not None and self.num.forms["value"] > 1)

    @property
    def person(self) -> str:
        if self.head.category == "pronoun":
            return self.head.forms["person"]
        return "3pl" if self.plural else "3sg"

    @property
    def proper(self) -> bool:
        """A name or a city: no article, plural, adjective or numeral."""
        return self.head.category in PROPER

    def sign_concepts(self) -> list[str]:
        return [c.id for c in (self.head, self.adj, self.num) if c is not None]


@dataclass
class Clause:
    """One sentence's meaning. ``wh`` replaces the role named by ``wh_role`` (subj, obj, place, time, reason)."""

    template: str
    tense: str = "present"
    time: Concept | None = None
    subj: NounPhrase | None = None
    verb: Concept | None = None
    obj: NounPhrase | None = None
    place: Concept | None = None
    pred: Concept | None = None
    weather: Concept | None = None
    neg: bool = False
    question: str | None = None  # None, "yes_no" or "wh"
    wh: Concept | None = None
    wh_role: str | None = None
    extra: dict = field(default_factory=dict)


def clause_concepts(clause: Clause) -> set[str]:
    """Every concept a clause signs (the same in every sign language: only the order differs)."""
    return set(sign_sequence(clause, "csl"))


def sign_sequence(clause: Clause, lang: str) -> list[str]:
    """Concept ids in the sign order of sign language ``lang``."""
    try:
        order = SIGN_ORDER[lang]
    except KeyError:
        raise KeyError(f"no SynthSign sign order for language {lang!r}; valid: {sorted(SIGN_ORDER)}") from None
    roles: dict[str, list[str]] = {
        "time": [clause.time.id] if clause.time else [],
        "subj": clause.subj.sign_concepts() if clause.subj else [],
        "obj": clause.obj.sign_concepts() if clause.obj else [],
        "verb": [clause.verb.id] if clause.verb else [],
        "place": [clause.place.id] if clause.place and clause.template != "weather" else [],
        "weather_place": [clause.place.id] if clause.place and clause.template == "weather" else [],
        "pred": [clause.pred.id] if clause.pred else [],
        "weather": [clause.weather.id] if clause.weather else [],
        "neg": ["not"] if clause.neg else [],
        "wh": [clause.wh.id] if clause.wh else [],
    }
    return [cid for role in order for cid in roles[role]]


# ----------------------------------------------------------------------------------------------------- sampling

_PRONOUN_IDS = frozenset(c.id for c in concepts_of("pronoun"))


def countable(concept: Concept) -> bool:
    """A noun that takes a numeral: a person, animal, object or food whose German plural differs from its
    singular (so "two" is visible in every language)."""
    return concept.category in ("person", "animal", "object", "food") and \
        concept.forms["de_plural"] != concept.de



class ClauseSampler:
    """Draws clauses with per-language Zipf-like concept weights.

    Args:
        weights: concept id -> unnormalised frequency weight (the long tail); a weight of 0 keeps a concept out of
            the free draws (it can still be a :meth:`sample_containing` target).
        rng: numpy Generator (the corpus seed).
        fallback: weights for a slot whose candidates all have weight 0 in ``weights`` (None: that is an error).
    """

    def __init__(self, weights: dict[str, float], rng: np.random.Generator,
                 fallback: dict[str, float] | None = None):
        self.weights = weights
        self.fallback = fallback
        self.rng = rng
        self._templates = list(TEMPLATES)
        self._template_p = np.array([TEMPLATES[t] for t in self._templates])
        self._template_p /= self._template_p.sum()
        self._target: str | None = None  # the concept the next pick among its candidates must return

    def pick(self, candidates: list[Concept]) -> Concept:
        if self._target is not None:
            for c in candidates:
                if c.id == self._target:
                    self._target = None  # placed once; the other slots draw freely
                    return c
        w = np.array([self.weights[c.id] for c in candidates], dtype=np.float64)
        if not w.sum() > 0 and self.fallback is not None:
            w = np.array([self.fallback[c.id] for c in candidates], dtype=np.float64)
        if not w.sum() > 0:
            raise ValueError(f"SynthSign sampler: every candidate of a slot has weight 0 "
                             f"({[c.id for c in candidates][:8]}...)")
        return candidates[int(self.rng.choice(len(candidates), p=w / w.sum()))]

    def sample_containing(self, concept: str, tries: int = 400) -> Clause | None:
        """A clause that signs ``concept`` (the first slot that can hold it does), or None after ``tries`` draws.

        Templates are drawn as usual and rejected until one has a slot for the concept (wh-words and negation have
        one template or coin each, so a few hundred tries find them almost surely; the draws are seeded, so the
        result is deterministic).
        """
        for _ in range(tries):
            self._target = concept
            clause = self.sample()
            self._target = None
            if concept in clause_concepts(clause):
                return clause
        return None

    def coin(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def _time(self, p: float = 0.55) -> Concept | None:
        return self.pick(concepts_of("time")) if self.coin(p) else None

    def _subject(self, animate_only: bool = True, adj_p: float = 0.12) -> NounPhrase:
        if self._target in _PRONOUN_IDS or self.coin(0.35):
            return NounPhrase(self.pick(concepts_of("pronoun")))
        head = self.pick(concepts_of("person", "name", "animal") if animate_only else concepts_of("person", "name"))
        adj = self.pick(concepts_of("adjective")) if self.coin(adj_p) and head.category not in PROPER else None
        return NounPhrase(head, adj=adj)

    def _object(self, verb: Concept, adj_p: float = 0.3, num_p: float = 0.2,
                countable_only: bool = False) -> NounPhrase:
        pool: list[Concept] = []
        for group in verb.forms["objects"]:
            pool += [BY_ID[i] for i in OBJECT_GROUPS[group]] if group in OBJECT_GROUPS else concepts_of(group)
        if countable_only:
            pool = [c for c in pool if countable(c)]
        head = self.pick(pool)
        num = self.pick([c for c in concepts_of("number") if c.forms["value"] > 1]) \
            if countable(head) and self.coin(num_p) else None
        adj = self.pick(concepts_of("adjective")) if self.coin(adj_p) and head.category not in PROPER else None
        return NounPhrase(head, adj=adj, num=num)

    def _place(self) -> Concept:
        return self.pick(concepts_of("place", "city"))

    def sample(self) -> Clause:
        template = self._templates[int(self.rng.choice(len(self._templates), p=self._template_p))]
        clause = getattr(self, f"_t_{template}")()
        clause.template = template
        if clause.time is not None:
            clause.tense = clause.time.forms["tense"]
        elif self.coin(0.2):
            clause.tense = "past"
        return clause

    def _t_transitive(self) -> Clause:
        verb = self.pick(concepts_of("verb_t"))
        return Clause("", time=self._time(), subj=self._subject(), verb=verb, obj=self._object(verb),
                      neg=self.coin(0.15))

    def _t_intransitive(self) -> Clause:
        return Clause("", time=self._time(0.85), subj=self._subject(adj_p=0.3), verb=self.pick(concepts_of("verb_i")),
                      neg=self.coin(0.15))

    def _t_motion(self) -> Clause:
        return Clause("", time=self._time(), subj=self._subject(), verb=self.pick(concepts_of("verb_go")),
                      place=self._place(), neg=self.coin(0.12))

    def _t_predicate(self) -> Clause:
        if self._target is not None and BY_ID[self._target].category in ("object", "food", "place", "city"):
            subj = NounPhrase(self.pick(concepts_of("object", "food", "place", "city")))
        else:
            subj = self._subject(adj_p=0.0)
            if subj.head.category != "pronoun" and self.coin(0.4):
                subj = NounPhrase(self.pick(concepts_of("object", "food", "place", "city")))
        return Clause("", time=self._time(0.4), subj=subj, pred=self.pick(concepts_of("adjective")),
                      neg=self.coin(0.15))

    def _t_weather(self) -> Clause:
        return Clause("", time=self._time(0.9), weather=self.pick(concepts_of("weather")), place=self._place())

    def _t_yes_no(self) -> Clause:
        c = self._t_transitive()
        c.neg, c.question = False, "yes_no"
        return c

    def _t_wh_object(self) -> Clause:
        verb = self.pick(concepts_of("verb_t"))
        return Clause("", time=self._time(0.4), subj=self._subject(), verb=verb, question="wh",
                      wh=BY_ID["what"], wh_role="obj")

    def _t_wh_subject(self) -> Clause:
        verb = self.pick(concepts_of("verb_t"))
        return Clause("", time=self._time(0.3), verb=verb, obj=self._object(verb, num_p=0.0), question="wh",
                      wh=BY_ID["who"], wh_role="subj")

    def _t_wh_where(self) -> Clause:
        return Clause("", time=self._time(0.3), subj=self._subject(), verb=self.pick(concepts_of("verb_go")),
                      question="wh", wh=BY_ID["where"], wh_role="place")

    def _t_wh_when(self) -> Clause:
        return Clause("", subj=self._subject(), verb=self.pick(concepts_of("verb_go")), place=self._place(),
                      question="wh", wh=BY_ID["when"], wh_role="time")

    def _t_wh_why(self) -> Clause:
        return Clause("", time=self._time(0.3), subj=self._subject(adj_p=0.0), pred=self.pick(concepts_of("adjective")),
                      question="wh", wh=BY_ID["why"], wh_role="reason")

    def _t_how_many(self) -> Clause:
        verb = BY_ID[str(self.rng.choice(["have", "buy", "want", "see", "need"]))]
        obj = self._object(verb, adj_p=0.15, num_p=0.0, countable_only=True)
        return Clause("", time=self._time(0.3), subj=self._subject(), verb=verb, obj=obj, question="wh",
                      wh=BY_ID["how_many"], wh_role="obj")


# ------------------------------------------------------------------------------------------------- realisation

Token = tuple[str, "str | None"]  # (surface word, concept id or None for a function word)


def _fw(*words: str) -> list[Token]:
    return [(w, None) for w in words]


# English ------------------------------------------------------------------------------------------------------

#: English object pronouns by concept id (the others keep their subject form).
_EN_OBJECT = {"i": "me", "he": "him", "she": "her", "we": "us", "they": "them"}


def _en_np(np_: NounPhrase, *, subject: bool, bare_plural_wh: bool = False) -> list[Token]:
    h = np_.head
    if h.category == "pronoun":
        if subject:
            return [(h.en, h.id)]
        return [(_EN_OBJECT.get(h.id, h.en), h.id)]
    if np_.proper:
        return [(w, h.id) for w in h.en.split()]
    out: list[Token] = []
    if np_.num is not None:
        out.append((np_.num.en, np_.num.id))
    elif not bare_plural_wh:
        out += _fw("the")
    if np_.adj is not None:
        out.append((np_.adj.en, np_.adj.id))
    noun = h.forms["en_plural"] if (np_.plural or bare_plural_wh) else h.en
    out += [(w, h.id) for w in noun.split()]
    return out


def _en_verb(verb: Concept, tense: str, person: str, *, neg: bool, aux_split: bool = False) -> tuple[list, list]:
    """Return (auxiliary part, main verb part); ``aux_split`` is for questions (aux goes before the subject)."""
    v = verb.id
    if tense == "future":
        return _fw("will", *(["not"] if neg else [])), [(verb.en, v)]
    third = person == "3sg"
    if neg or aux_split:
        aux = ("did" if tense == "past" else ("does" if third else "do"),)
        return _fw(*aux, *(["not"] if neg else [])), [(verb.en, v)]
    form = verb.forms["en_past"] if tense == "past" else (verb.forms["en_3sg"] if third else verb.en)
    return [], [(form, v)]


def _en_be(tense: str, person: str) -> str:
    if tense == "past":
        return "was" if person in ("1sg", "3sg") else "were"
    if tense == "future":
        return "will be"
    return {"1sg": "am", "3sg": "is"}.get(person, "are")


def _en_place(place: Concept, prep: str) -> list[Token]:
    article = [] if place.category in PROPER else ["the"]
    return _fw(prep, *article) + [(w, place.id) for w in place.en.split()]


def realize_en(c: Clause) -> tuple[list[Token], str]:
    time = [(w, c.time.id) for w in c.time.en.split()] if c.time else []
    t, q = c.template, c.question
    if t == "weather":
        be = {"past": "was", "future": "will be"}.get(c.tense, "is")
        words = time + _fw("there", *be.split()) + [(w, c.weather.id) for w in c.weather.en.split()] \
            + _en_place(c.place, "in")
        return words, "."
    if t in ("predicate", "wh_why"):
        subj = _en_np(c.subj, subject=True)
        be = _en_be(c.tense, c.subj.person).split()
        pred = [(c.pred.en, c.pred.id)]
        if t == "wh_why":
            return [(c.wh.en, c.wh.id)] + _fw(be[0]) + subj + _fw(*be[1:]) + pred + time, "?"
        return time + subj + _fw(be[0]) + _fw(*(["not"] if c.neg else [])) + _fw(*be[1:]) + pred, "."
    subj_person = c.subj.person if c.subj else "3sg"
    if t in ("motion", "wh_where", "wh_when"):
        prep = "in" if c.verb.forms["prep"] == "in" else "to"
        place = _en_place(c.place, prep) if c.place else []
        if t == "wh_where":
            aux, main = _en_verb(c.verb, c.tense, subj_person, neg=False, aux_split=True)
            return [(c.wh.en, c.wh.id)] + aux + _en_np(c.subj, subject=True) + main + time, "?"
        if t == "wh_when":
            aux, main = _en_verb(c.verb, c.tense, subj_person, neg=False, aux_split=True)
            return [(c.wh.en, c.wh.id)] + aux + _en_np(c.subj, subject=True) + main + place, "?"
        aux, main = _en_verb(c.verb, c.tense, subj_person, neg=c.neg)
        return time + _en_np(c.subj, subject=True) + aux + main + place, "."
    if t == "intransitive":
        aux, main = _en_verb(c.verb, c.tense, subj_person, neg=c.neg)
        return time + _en_np(c.subj, subject=True) + aux + main, "."
    if t == "wh_subject":
        aux, main = _en_verb(c.verb, c.tense, "3sg", neg=False)
        return [(c.wh.en, c.wh.id)] + aux + main + _en_np(c.obj, subject=False) + time, "?"
    if t == "wh_object":
        aux, main = _en_verb(c.verb, c.tense, subj_person, neg=False, aux_split=True)
        return [(c.wh.en, c.wh.id)] + aux + _en_np(c.subj, subject=True) + main + time, "?"
    if t == "how_many":
        aux, main = _en_verb(c.verb, c.tense, subj_person, neg=False, aux_split=True)
        wh = [(w, c.wh.id) for w in c.wh.en.split()]
        return wh + _en_np(c.obj, subject=False, bare_plural_wh=True) + aux + _en_np(c.subj, subject=True) \
            + main + time, "?"
    if q == "yes_no":
        aux, main = _en_verb(c.verb, c.tense, subj_person, neg=False, aux_split=True)
        return aux + _en_np(c.subj, subject=True) + main + _en_np(c.obj, subject=False) + time, "?"
    aux, main = _en_verb(c.verb, c.tense, subj_person, neg=c.neg)
    return time + _en_np(c.subj, subject=True) + aux + main + _en_np(c.obj, subject=False), "."


# German -------------------------------------------------------------------------------------------------------

_DE_ART = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
           "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
           "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"}}
_DE_PRON = {"acc": {"ich": "mich", "du": "dich", "er": "ihn", "sie": "sie", "wir": "uns"},
            "dat": {"ich": "mir", "du": "dir", "er": "ihm", "sie": "ihr", "wir": "uns"}}
_DE_AUX = {
    "haben": {"1sg": "habe", "2sg": "hast", "3sg": "hat", "1pl": "haben", "3pl": "haben"},
    "sein": {"1sg": "bin", "2sg": "bist", "3sg": "ist", "1pl": "sind", "3pl": "sind"},
    "werden": {"1sg": "werde", "2sg": "wirst", "3sg": "wird", "1pl": "werden", "3pl": "werden"},
    "sein_past": {"1sg": "war", "2sg": "warst", "3sg": "war", "1pl": "waren", "3pl": "waren"},
}
_DE_1SG = {"wollen": "will", "mögen": "mag"}
#: 2nd person singular forms the rule in :func:`de_2sg` cannot derive (a stem in -t contracted in the 3rd person:
#: "hält" -> "hältst"); none of the lexicon's verbs needs one today, the table documents where such a verb goes.
_DE_2SG: dict[str, str] = {"halten": "hältst", "raten": "rätst", "treten": "trittst"}
#: Stem endings after which the 2nd person singular adds only -t ("du isst", "du putzt", "du liest", "du heißt").
_DE_SIBILANTS = ("s", "ß", "x", "z")
#: German question words that replace a wh concept's citation form: "wohin" (where, with a motion verb), "wem" (the
#: object question of a dative verb).
_DE_WH_TO = "wohin"
_DE_WH_DATIVE = "wem"
_PERSONS = ("1sg", "2sg", "3sg", "1pl", "3pl")


def _de_present(verb: Concept, person: str) -> list[str]:
    """Finite present-tense form(s): separable verbs return [verb, particle]."""
    third = verb.forms["de_3sg"].split()
    particle = third[1:]
    if person == "3sg":
        return third
    inf = verb.de[len(particle[0]):] if particle else verb.de
    if person in ("1pl", "3pl"):
        return [inf, *particle]
    if person == "1sg":
        stem = inf[:-2] if inf.endswith("en") else inf[:-1]
        return [_DE_1SG.get(verb.de, stem + "e"), *particle]
    return [de_2sg(verb.de, third[0]), *particle]


def de_2sg(infinitive: str, third: str) -> str:
    """German present 2nd person singular from the 3rd ("du" form from the "er" form, finite part only).

    * 3rd person in -t: its stem (the 3rd person minus -t, with the vowel change the 3rd person has) + -st, or
      only -t after a sibilant: sieht -> siehst, fährt -> fährst, arbeitet -> arbeitest, hilft -> hilfst, but
      isst -> isst, liest -> liest, putzt -> putzt, tanzt -> tanzt, heißt -> heißt;
    * otherwise (modal verbs, whose 3rd person has no ending): + -st, or -t after a sibilant: mag -> magst,
      will -> willst, kann -> kannst, muss -> musst, weiß -> weißt;
    * :data:`_DE_2SG` lists the exceptions (stems in -t contracted in the 3rd person: hält -> hältst).
    """
    if infinitive in _DE_2SG:
        return _DE_2SG[infinitive]
    stem = third[:-1] if third.endswith("t") else third
    return stem + ("t" if stem.endswith(_DE_SIBILANTS) else "st")


#: Attributive adjective endings the German noun phrase uses (strong and weak declension).
_DE_ADJ_ENDINGS = ("e", "en", "er", "es")


def _de_adj_stem(adj: Concept) -> str:
    return adj.de[:-1] if adj.de.endswith("e") else adj.de


def _de_np(np_: NounPhrase, case: str, *, article: bool = True) -> list[Token]:
    h = np_.head
    if h.category == "pronoun":
        return [(_DE_PRON.get(case, {}).get(h.de, h.de), h.id)]
    if np_.proper:
        return [(w, h.id) for w in h.de.split()]
    gender = "pl" if np_.plural else h.forms["de_gender"]
    out: list[Token] = []
    strong = np_.num is not None or not article
    if np_.num is not None:
        out.append((np_.num.de, np_.num.id))
    elif article:
        out += _fw(_DE_ART[case][gender])
    if np_.adj is not None:
        if strong:  # every ending used here is one of _DE_ADJ_ENDINGS
            ending = "e" if gender == "pl" else {"m": "er", "f": "e", "n": "es"}[gender]
        elif case == "nom" or (case == "acc" and gender in ("f", "n")):
            ending = "en" if gender == "pl" else "e"
        else:
            ending = "en"
        out.append((_de_adj_stem(np_.adj) + ending, np_.adj.id))
    # a weak masculine noun takes -(e)n outside the nominative singular ("den Studenten"): its plural form
    weak = h.forms.get("de_weak", False) and case != "nom"
    noun = h.forms["de_plural"] if np_.plural or weak else h.de
    out += [(w, h.id) for w in noun.split()]
    return out


def _de_place(place: Concept, prep: str) -> list[Token]:
    if place.category in PROPER:  # towns take no article: "nach Berlin", "in Berlin"
        return _fw("nach" if prep == "to" else "in") + [(w, place.id) for w in place.de.split()]
    g = place.forms["de_gender"]
    words = (["zur"] if g == "f" else ["zum"]) if prep == "to" else (["in", "der"] if g == "f" else ["im"])
    return _fw(*words) + [(place.de, place.id)]


def _de_clause(front: list[Token], subj: list[Token], person: str, verb: Concept, tense: str, middle: list[Token],
               *, neg: bool, question: bool, late: list[Token] | None = None) -> list[Token]:
    """German verb-second (or verb-first for yes/no questions) clause with the right verb bracket."""
    late = late or []
    nicht = _fw("nicht") if neg else []
    if tense == "present":
        finite = _de_present(verb, person)
        first, particle = [(finite[0], verb.id)], [(w, verb.id) for w in finite[1:]]
        tail: list[Token] = particle
    else:
        aux = _DE_AUX["werden" if tense == "future" else ("sein" if verb.forms["de_aux"] == "s" else "haben")]
        first = _fw(aux[person])
        tail = [(verb.de if tense == "future" else verb.forms["de_participle"], verb.id)]
    if question and not front:
        return first + subj + middle + nicht + late + tail
    if front:
        return front + first + subj + middle + nicht + late + tail
    return subj + first + middle + nicht + late + tail


def realize_de(c: Clause) -> tuple[list[Token], str]:
    time = [(w, c.time.id) for w in c.time.de.split()] if c.time else []
    t = c.template
    if t == "weather":
        verb = "gab" if c.tense == "past" else "gibt"
        front = time or _fw("es")
        return front + _fw(verb) + (_fw("es") if time else []) + [(c.weather.de, c.weather.id)] + \
            _de_place(c.place, "in"), "."
    if t in ("predicate", "wh_why"):
        person = c.subj.person
        subj = _de_np(c.subj, "nom")
        pred = [(c.pred.de, c.pred.id)]
        be = _DE_AUX["sein_past" if c.tense == "past" else ("werden" if c.tense == "future" else "sein")][person]
        tail = _fw("sein") if c.tense == "future" else []
        if t == "wh_why":
            return [(c.wh.de, c.wh.id)] + _fw(be) + subj + time + pred + tail, "?"
        nicht = _fw("nicht") if c.neg else []
        if time:
            return time + _fw(be) + subj + nicht + pred + tail, "."
        return subj + _fw(be) + nicht + pred + tail, "."
    person = c.subj.person if c.subj else "3sg"
    subj = _de_np(c.subj, "nom") if c.subj else []
    if t in ("motion", "wh_where", "wh_when"):
        place = _de_place(c.place, c.verb.forms["prep"]) if c.place else []
        if t == "wh_where":
            wh = "wo" if c.verb.forms["prep"] == "in" else _DE_WH_TO
            return _de_clause([(wh, c.wh.id)], subj, person, c.verb, c.tense, time, neg=False, question=True), "?"
        if t == "wh_when":
            return _de_clause([(c.wh.de, c.wh.id)], subj, person, c.verb, c.tense, [], neg=False, question=True,
                              late=place), "?"
        return _de_clause(time, subj, person, c.verb, c.tense, [], neg=c.neg, question=False, late=place), "."
    if t == "intransitive":
        return _de_clause(time, subj, person, c.verb, c.tense, [], neg=c.neg, question=False), "."
    case = "dat" if c.verb.forms["de_case"] == "d" else "acc"
    if t == "wh_subject":
        return _de_clause([(c.wh.de, c.wh.id)], [], "3sg", c.verb, c.tense, time + _de_np(c.obj, case),
                          neg=False, question=True), "?"
    if t == "wh_object":
        wh = _DE_WH_DATIVE if case == "dat" else c.wh.de
        return _de_clause([(wh, c.wh.id)], subj, person, c.verb, c.tense, time, neg=False, question=True), "?"
    if t == "how_many":
        obj_np = NounPhrase(c.obj.head, c.obj.adj, BY_ID["two"])  # plural agreement, numeral itself not spoken
        words = [(w, c.wh.id) for w in c.wh.de.split()] + [tok for tok in _de_np(obj_np, case) if tok[1] != "two"]
        return _de_clause(words, subj, person, c.verb, c.tense, time, neg=False, question=True), "?"
    obj = _de_np(c.obj, case)
    if c.question == "yes_no":
        return _de_clause([], subj, person, c.verb, c.tense, time + obj, neg=False, question=True), "?"
    return _de_clause(time, subj, person, c.verb, c.tense, obj, neg=c.neg, question=False), "."


# Chinese ------------------------------------------------------------------------------------------------------

def _zh_np(np_: NounPhrase, *, wh_count: Concept | None = None) -> list[Token]:
    h = np_.head
    out: list[Token] = []
    if wh_count is not None:
        out += [(wh_count.zh, wh_count.id)] + _fw(h.forms["zh_measure"])
    elif np_.num is not None:
        out += [(np_.num.zh, np_.num.id)] + _fw(h.forms["zh_measure"])
    if np_.adj is not None:
        out.append((np_.adj.zh, np_.adj.id))
        if _zh_needs_de(np_.adj.zh, h.zh):
            out += _fw("的")
    out.append((h.zh, h.id))
    return out


@functools.cache
def _zh_words() -> frozenset[str]:
    return frozenset(c.zh for c in CONCEPTS)


@functools.cache
def _zh_needs_de(adj: str, noun: str) -> bool:
    """Whether 的 goes between a Chinese adjective and its noun: always after a multi-character adjective, and
    after a one-character one when adjective + noun would start with another word (大 + 学生 reads 大学 生)."""
    if len(adj) > 1:
        return True
    joined = adj + noun
    return any(len(w) > 1 and joined.startswith(w) for w in _zh_words())


def _zh_verb(verb: Concept, tense: str, neg: bool) -> tuple[list[Token], list[Token]]:
    """(pre-verb words incl. the verb, post-verb aspect words)."""
    if tense == "past":
        return (_fw("没") if neg else []) + [(verb.zh, verb.id)], ([] if neg else _fw("了"))
    if tense == "future":
        return _fw(*(["不"] if neg else []), "会") + [(verb.zh, verb.id)], []
    return (_fw("不") if neg else []) + [(verb.zh, verb.id)], []


def realize_zh(c: Clause) -> tuple[list[Token], str]:
    time = [(c.time.zh, c.time.id)] if c.time else []
    t = c.template
    if t == "weather":
        return time + [(c.place.zh, c.place.id)] + _fw("有") + [(c.weather.zh, c.weather.id)], "。"
    if t in ("predicate", "wh_why"):
        subj = _zh_np(c.subj)
        pred = [(c.pred.zh, c.pred.id)]
        if t == "wh_why":
            return time + subj + [(c.wh.zh, c.wh.id)] + pred, "？"
        return time + subj + (_fw("不") if c.neg else _fw("很")) + pred, "。"
    subj = _zh_np(c.subj) if c.subj else []
    if t in ("motion", "wh_where", "wh_when"):
        pre, post = _zh_verb(c.verb, c.tense, c.neg)
        if t == "wh_where":
            return time + subj + pre + [(c.wh.zh, c.wh.id)], "？"
        place = [(c.place.zh, c.place.id)]
        if t == "wh_when":
            return subj + [(c.wh.zh, c.wh.id)] + pre + place, "？"
        return time + subj + pre + post + place, "。"
    pre, post = _zh_verb(c.verb, c.tense, c.neg and c.question is None)
    if t == "intransitive":
        return time + subj + pre + post, "。"
    if t == "wh_subject":
        return time + [(c.wh.zh, c.wh.id)] + pre + post + _zh_np(c.obj), "？"
    if t == "wh_object":
        return time + subj + pre + post + [(c.wh.zh, c.wh.id)], "？"
    if t == "how_many":
        return time + subj + pre + post + _zh_np(c.obj, wh_count=c.wh), "？"
    words = time + subj + pre + post + _zh_np(c.obj)
    if c.question == "yes_no":
        return words + _fw("吗"), "？"
    return words, "。"


REALIZERS: dict[str, Callable[[Clause], tuple[list[Token], str]]] = {
    "en": realize_en, "de": realize_de, "zh": realize_zh,
}


def realize(clause: Clause, spoken: str) -> tuple[str, list[Token]]:
    """Spoken sentence (Chinese without spaces) and its tokens [(word, concept id | None)]."""
    tokens, end = REALIZERS[spoken](clause)
    if spoken == "zh":
        return "".join(w for w, _ in tokens) + end, tokens
    text = " ".join(w for w, _ in tokens)
    return text[:1].upper() + text[1:] + end, tokens


def text_concepts(tokens: list[Token]) -> list[str]:
    """Concept ids in the order their words first appear in the text."""
    seen: list[str] = []
    for _, cid in tokens:
        if cid is not None and cid not in seen:
            seen.append(cid)
    return seen


# ------------------------------------------------------------------------------------------------ surface forms

def surface_forms(concept: Concept, spoken: str) -> tuple[str, ...]:
    """Every word form the grammar can write for ``concept`` in ``spoken`` other than its citation form.

    English: plurals, object pronouns, verbs' 3rd person singular and past; German: plurals, accusative / dative
    pronouns, the present forms of every person (of a separable verb only the finite part: "ruft" of "ruft ... an";
    its particle alone is a preposition), participles, attributive adjective endings, "wohin" / "wem"; Chinese
    words do not inflect. Phrases (multi-word forms) are space-separated. Forms two concepts share are kept here;
    :func:`unambiguous_forms` drops them.

    Args:
        concept: a lexicon concept.
        spoken: "en", "de" or "zh".

    Returns:
        Forms in a fixed order, without duplicates or the citation form (compared case-insensitively).
    """
    if spoken not in REALIZERS:
        raise KeyError(f"no SynthSign grammar for spoken language {spoken!r}; valid: {sorted(REALIZERS)}")
    c, verb = concept, concept.category in ("verb_t", "verb_i", "verb_go")
    forms: list[str] = []
    if spoken == "en":
        if c.category == "pronoun":
            forms.append(_EN_OBJECT.get(c.id, c.en))
        elif "en_plural" in c.forms:
            forms.append(c.forms["en_plural"])
        elif verb:
            forms += [c.forms["en_3sg"], c.forms["en_past"]]
    elif spoken == "de":
        if c.category == "pronoun":
            forms += [_DE_PRON[case].get(c.de, c.de) for case in ("acc", "dat")]
        elif "de_plural" in c.forms:
            forms.append(c.forms["de_plural"])
        elif verb:
            forms += [_de_present(c, person)[0] for person in _PERSONS] + [c.forms["de_participle"]]
        elif c.category == "adjective":
            forms += [_de_adj_stem(c) + ending for ending in _DE_ADJ_ENDINGS]
        elif c.id == "where":
            forms.append(_DE_WH_TO)
        elif c.id == "what":
            forms.append(_DE_WH_DATIVE)
    citation = c.word(spoken).lower()
    return tuple(dict.fromkeys(f for f in forms if f.lower() != citation))


@functools.cache
def unambiguous_forms(spoken: str) -> dict[str, tuple[str, ...]]:
    """concept id -> its :func:`surface_forms` that no other concept writes (as a citation or a form).

    A form two concepts share (German "Spiele": plural of Spiel and 1sg of spielen; "ihr": dative of "sie" = she
    and they) cannot tell which sign is meant, so it is left out, as the dictionary leaves out citation words two
    concepts share.
    """
    owners: dict[str, set[str]] = {}
    for c in CONCEPTS:
        for word in (c.word(spoken), *surface_forms(c, spoken)):
            owners.setdefault(word.lower(), set()).add(c.id)
    return {c.id: tuple(f for f in surface_forms(c, spoken) if owners[f.lower()] == {c.id}) for c in CONCEPTS}
