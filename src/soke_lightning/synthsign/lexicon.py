"""SynthSign vocabulary: ~190 shared concepts with real English / German / Chinese words, declared as data.

Each concept has a category (which grammar slots it can fill) and the surface forms the grammar needs
(English plural / verb forms, German gender / plural / conjugation, Chinese word and measure word). Function
words ("the", "wird", "了") are not concepts: the grammar inserts them and they have no sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Concept categories, in the order they are declared below.
CATEGORIES = (
    "pronoun", "person", "animal", "object", "food", "drink", "place", "weather", "time", "number",
    "verb_t", "verb_i", "verb_go", "adjective", "wh", "negation",
)


@dataclass(frozen=True)
class Concept:
    """One meaning with a word in each spoken language.

    Attributes:
        id: ASCII identifier (also the gloss stem, e.g. "teacher" -> gloss "TEACHER").
        category: one of :data:`CATEGORIES`.
        en / de / zh: citation form of the word (dictionary key); German nouns without article.
        forms: grammatical forms used by the grammar (see the tables below for the keys per category).
    """

    id: str
    category: str
    en: str
    de: str
    zh: str
    forms: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def gloss(self) -> str:
        return self.id.upper().replace("_", "-")

    def word(self, spoken: str) -> str:
        """Citation form in spoken language ``spoken`` ("en", "de" or "zh")."""
        return getattr(self, spoken)


# Pronouns: id | en subject | de subject | zh | person-number (1sg 2sg 3sg 1pl 3pl)
_PRONOUNS = """
i|I|ich|我|1sg
you|you|du|你|2sg
he|he|er|他|3sg
she|she|sie|她|3sg
we|we|wir|我们|1pl
they|they|sie|他们|3pl
"""

# Nouns: id | en (| en plural) | de gender m/f/n | de singular | de plural | zh | zh measure word
_NOUNS = {
    "person": """
man|man|men|m|Mann|Männer|男人|个
woman|woman|women|f|Frau|Frauen|女人|个
child|child|children|n|Kind|Kinder|孩子|个
friend|friend||m|Freund|Freunde|朋友|个
mother|mother||f|Mutter|Mütter|妈妈|个
father|father||m|Vater|Väter|爸爸|个
teacher|teacher||m|Lehrer|Lehrer|老师|个
doctor|doctor||f|Ärztin|Ärztinnen|医生|个
student|student||m|Student|Studenten|学生|个
brother|brother||m|Bruder|Brüder|哥哥|个
sister|sister||f|Schwester|Schwestern|姐姐|个
baby|baby|babies|n|Baby|Babys|宝宝|个
boss|boss|bosses|m|Chef|Chefs|老板|个
neighbour|neighbour||m|Nachbar|Nachbarn|邻居|个
girl|girl||n|Mädchen|Mädchen|女孩|个
boy|boy||m|Junge|Jungen|男孩|个
grandmother|grandmother||f|Oma|Omas|奶奶|个
police|police officer||m|Polizist|Polizisten|警察|个
""",
    "animal": """
dog|dog||m|Hund|Hunde|狗|只
cat|cat||f|Katze|Katzen|猫|只
bird|bird||m|Vogel|Vögel|鸟|只
horse|horse||n|Pferd|Pferde|马|匹
fish|fish|fish|m|Fisch|Fische|鱼|条
cow|cow||f|Kuh|Kühe|牛|头
""",
    "object": """
book|book||n|Buch|Bücher|书|本
car|car||n|Auto|Autos|车|辆
house|house||n|Haus|Häuser|房子|个
phone|phone||n|Handy|Handys|手机|个
computer|computer||m|Computer|Computer|电脑|台
table|table||m|Tisch|Tische|桌子|张
chair|chair||m|Stuhl|Stühle|椅子|把
door|door||f|Tür|Türen|门|个
bag|bag||f|Tasche|Taschen|包|个
ticket|ticket||n|Ticket|Tickets|票|张
key|key||m|Schlüssel|Schlüssel|钥匙|把
shoe|shoe||m|Schuh|Schuhe|鞋|双
letter|letter||m|Brief|Briefe|信|封
picture|picture||n|Bild|Bilder|画|幅
bicycle|bicycle||n|Fahrrad|Fahrräder|自行车|辆
ball|ball||m|Ball|Bälle|球|个
cup|cup||f|Tasse|Tassen|杯子|个
bed|bed||n|Bett|Betten|床|张
window|window||n|Fenster|Fenster|窗户|个
flower|flower||f|Blume|Blumen|花|朵
newspaper|newspaper||f|Zeitung|Zeitungen|报纸|份
film|film||m|Film|Filme|电影|部
game|game||n|Spiel|Spiele|游戏|个
gift|gift||n|Geschenk|Geschenke|礼物|个
money|money|money|n|Geld|Geld|钱|笔
wristwatch|wristwatch||f|Uhr|Uhren|手表|块
""",
    "food": """
bread|bread|bread|n|Brot|Brote|面包|个
apple|apple||m|Apfel|Äpfel|苹果|个
rice|rice|rice|m|Reis|Reis|米饭|碗
soup|soup||f|Suppe|Suppen|汤|碗
cake|cake||m|Kuchen|Kuchen|蛋糕|块
meat|meat|meat|n|Fleisch|Fleisch|肉|块
egg|egg||n|Ei|Eier|鸡蛋|个
banana|banana||f|Banane|Bananen|香蕉|根
""",
    "drink": """
water|water|water|n|Wasser|Wasser|水|杯
coffee|coffee|coffee|m|Kaffee|Kaffee|咖啡|杯
tea|tea|tea|m|Tee|Tee|茶|杯
milk|milk|milk|f|Milch|Milch|牛奶|杯
beer|beer||n|Bier|Biere|啤酒|杯
juice|juice||m|Saft|Säfte|果汁|杯
""",
    "place": """
school|school||f|Schule|Schulen|学校|所
hospital|hospital||n|Krankenhaus|Krankenhäuser|医院|家
city|city|cities|f|Stadt|Städte|城市|个
station|station||m|Bahnhof|Bahnhöfe|车站|个
shop|shop||m|Laden|Läden|商店|家
park|park||m|Park|Parks|公园|个
church|church|churches|f|Kirche|Kirchen|教堂|个
restaurant|restaurant||n|Restaurant|Restaurants|饭店|家
office|office||n|Büro|Büros|办公室|个
kitchen|kitchen||f|Küche|Küchen|厨房|个
garden|garden||m|Garten|Gärten|花园|个
airport|airport||m|Flughafen|Flughäfen|机场|个
library|library|libraries|f|Bibliothek|Bibliotheken|图书馆|个
beach|beach|beaches|m|Strand|Strände|海滩|个
mountain|mountain||m|Berg|Berge|山|座
university|university|universities|f|Universität|Universitäten|大学|所
zoo|zoo||m|Zoo|Zoos|动物园|个
village|village||n|Dorf|Dörfer|村子|个
""",
    "weather": """
rain|rain||m|Regen|Regen|雨|场
snow|snow||m|Schnee|Schnee|雪|场
sun|sunshine||m|Sonnenschein|Sonnenschein|阳光|片
wind|wind||m|Wind|Winde|风|阵
cloud|clouds||f|Wolken|Wolken|云|片
storm|a storm||n|Gewitter|Gewitter|暴风雨|场
fog|fog||m|Nebel|Nebel|雾|场
frost|frost||m|Frost|Frost|霜|场
""",
}

# Time words: id | en | de | zh | tense (past / present / future)
_TIMES = """
today|today|heute|今天|present
tomorrow|tomorrow|morgen|明天|future
yesterday|yesterday|gestern|昨天|past
tonight|tonight|heute Abend|今晚|future
monday|on Monday|am Montag|星期一|future
friday|on Friday|am Freitag|星期五|future
weekend|on the weekend|am Wochenende|周末|future
next_week|next week|nächste Woche|下周|future
last_week|last week|letzte Woche|上周|past
now|now|jetzt|现在|present
morning|in the morning|am Morgen|早上|present
last_year|last year|letztes Jahr|去年|past
"""

_NUMBERS = """
one|one|eins|一|1
two|two|zwei|两|2
three|three|drei|三|3
four|four|vier|四|4
five|five|fünf|五|5
six|six|sechs|六|6
seven|seven|sieben|七|7
eight|eight|acht|八|8
nine|nine|neun|九|9
ten|ten|zehn|十|10
"""

# Transitive verbs: id | en base | en 3sg | en past | de infinitive | de 3sg | de participle | de aux (h/s)
#   | de object case (a/d) | zh | object categories (comma separated)
_VERBS_T = """
eat|eat|eats|ate|essen|isst|gegessen|h|a|吃|food
drink|drink|drinks|drank|trinken|trinkt|getrunken|h|a|喝|drink
see|see|sees|saw|sehen|sieht|gesehen|h|a|看见|person,animal,object
want|want|wants|wanted|wollen|will|gewollt|h|a|要|object,food,drink,animal
like|like|likes|liked|mögen|mag|gemocht|h|a|喜欢|person,animal,object,food,drink,place
love|love|loves|loved|lieben|liebt|geliebt|h|a|爱|person,animal
help|help|helps|helped|helfen|hilft|geholfen|h|d|帮助|person
buy|buy|buys|bought|kaufen|kauft|gekauft|h|a|买|object,food,drink
read|read|reads|read|lesen|liest|gelesen|h|a|读|book_like
write|write|writes|wrote|schreiben|schreibt|geschrieben|h|a|写|book_like
sell|sell|sells|sold|verkaufen|verkauft|verkauft|h|a|卖|object,food,animal
need|need|needs|needed|brauchen|braucht|gebraucht|h|a|需要|object,food,drink
find|find|finds|found|finden|findet|gefunden|h|a|找到|object,animal
open|open|opens|opened|öffnen|öffnet|geöffnet|h|a|打开|openable
clean|clean|cleans|cleaned|putzen|putzt|geputzt|h|a|打扫|cleanable
visit|visit|visits|visited|besuchen|besucht|besucht|h|a|拜访|person,place
call|call|calls|called|anrufen|ruft an|angerufen|h|a|打电话给|person
meet|meet|meets|met|treffen|trifft|getroffen|h|a|见|person
cook|cook|cooks|cooked|kochen|kocht|gekocht|h|a|做|food
bring|bring|brings|brought|bringen|bringt|gebracht|h|a|带|object,food,drink
watch|watch|watches|watched|schauen|schaut|geschaut|h|a|看|screen
have|have|has|had|haben|hat|gehabt|h|a|有|person,animal,object,food
lose|lose|loses|lost|verlieren|verliert|verloren|h|a|丢|object,animal
forget|forget|forgets|forgot|vergessen|vergisst|vergessen|h|a|忘记|object,person
"""

# Intransitive verbs: id | en base | en 3sg | en past | de inf | de 3sg | de participle | de aux | zh
_VERBS_I = """
sleep|sleep|sleeps|slept|schlafen|schläft|geschlafen|h|睡觉
work|work|works|worked|arbeiten|arbeitet|gearbeitet|h|工作
run|run|runs|ran|laufen|läuft|gelaufen|s|跑步
swim|swim|swims|swam|schwimmen|schwimmt|geschwommen|s|游泳
wait|wait|waits|waited|warten|wartet|gewartet|h|等
play|play|plays|played|spielen|spielt|gespielt|h|玩
laugh|laugh|laughs|laughed|lachen|lacht|gelacht|h|笑
cry|cry|cries|cried|weinen|weint|geweint|h|哭
dance|dance|dances|danced|tanzen|tanzt|getanzt|h|跳舞
study|study|studies|studied|lernen|lernt|gelernt|h|学习
"""

# Motion / location verbs with a place: id | en | en 3sg | en past | de inf | de 3sg | de participle | de aux
#   | de preposition kind (to / in) | zh
_VERBS_GO = """
go|go|goes|went|gehen|geht|gegangen|s|to|去
drive|drive|drives|drove|fahren|fährt|gefahren|s|to|开车去
live|live|lives|lived|wohnen|wohnt|gewohnt|h|in|住在
fly|fly|flies|flew|fliegen|fliegt|geflogen|s|to|飞去
"""

# Adjectives: id | en | de predicative | zh
_ADJECTIVES = """
big|big|groß|大
small|small|klein|小
good|good|gut|好
bad|bad|schlecht|坏
new|new|neu|新
old|old|alt|旧
happy|happy|glücklich|高兴
sad|sad|traurig|难过
beautiful|beautiful|schön|漂亮
expensive|expensive|teuer|贵
cheap|cheap|billig|便宜
fast|fast|schnell|快
tired|tired|müde|累
hungry|hungry|hungrig|饿
hot|hot|heiß|热
cold|cold|kalt|冷
red|red|rot|红
blue|blue|blau|蓝
green|green|grün|绿
white|white|weiß|白
black|black|schwarz|黑
young|young|jung|年轻
sick|sick|krank|生病
"""

# Question words: id | en | de | zh
_WH = """
what|what|was|什么
where|where|wo|哪里
who|who|wer|谁
when|when|wann|什么时候
why|why|warum|为什么
how_many|how many|wie viele|几
"""

#: Object sub-categories used by verb selection restrictions.
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "book_like": ("book", "letter", "newspaper"),
    "openable": ("door", "window", "bag", "book", "letter", "gift"),
    "cleanable": ("house", "kitchen", "car", "table", "window", "cup", "shoe", "bed"),
    "screen": ("film", "game", "picture"),
}


def _rows(table: str) -> list[list[str]]:
    return [line.split("|") for line in table.strip().splitlines() if line.strip()]


def _en_plural(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _build() -> tuple[Concept, ...]:
    out: list[Concept] = []
    for cid, en, de, zh, pn in _rows(_PRONOUNS):
        out.append(Concept(cid, "pronoun", en, de, zh, {"person": pn}))
    for category, table in _NOUNS.items():
        for cid, en, en_pl, gender, de, de_pl, zh, measure in _rows(table):
            out.append(Concept(cid, category, en, de, zh, {
                "en_plural": en_pl or _en_plural(en), "de_gender": gender, "de_plural": de_pl, "zh_measure": measure,
            }))
    for cid, en, de, zh, tense in _rows(_TIMES):
        out.append(Concept(cid, "time", en, de, zh, {"tense": tense}))
    for cid, en, de, zh, value in _rows(_NUMBERS):
        out.append(Concept(cid, "number", en, de, zh, {"value": int(value)}))
    for cid, en, en3, enp, de, de3, depart, aux, case, zh, objects in _rows(_VERBS_T):
        out.append(Concept(cid, "verb_t", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux,
            "de_case": case, "objects": tuple(objects.split(",")),
        }))
    for cid, en, en3, enp, de, de3, depart, aux, zh in _rows(_VERBS_I):
        out.append(Concept(cid, "verb_i", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux,
        }))
    for cid, en, en3, enp, de, de3, depart, aux, prep, zh in _rows(_VERBS_GO):
        out.append(Concept(cid, "verb_go", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux, "prep": prep,
        }))
    for cid, en, de, zh in _rows(_ADJECTIVES):
        out.append(Concept(cid, "adjective", en, de, zh))
    for cid, en, de, zh in _rows(_WH):
        out.append(Concept(cid, "wh", en, de, zh))
    out.append(Concept("not", "negation", "not", "nicht", "不"))
    ids = [c.id for c in out]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise AssertionError(f"SynthSign lexicon: duplicate concept ids {duplicates}")
    return tuple(out)


#: Every concept, in a fixed declaration order (the index is the concept's stable number).
CONCEPTS: tuple[Concept, ...] = _build()
CONCEPT_INDEX: dict[str, int] = {c.id: i for i, c in enumerate(CONCEPTS)}
BY_ID: dict[str, Concept] = {c.id: c for c in CONCEPTS}


def concepts_of(*categories: str) -> list[Concept]:
    """Concepts whose category is one of ``categories`` (declaration order)."""
    unknown = set(categories) - set(CATEGORIES)
    if unknown:
        raise KeyError(f"unknown concept categories {sorted(unknown)}; valid: {CATEGORIES}")
    return [c for c in CONCEPTS if c.category in categories]


def get_concept(cid: str) -> Concept:
    try:
        return BY_ID[cid]
    except KeyError:
        raise KeyError(f"unknown SynthSign concept {cid!r} ({len(CONCEPTS)} concepts are declared)") from None


#: Which spoken language each SynthSign sign language is paired with (registry keys -> lexicon fields).
SPOKEN_OF: dict[str, str] = {"asl": "en", "csl": "zh", "dgs": "de"}
