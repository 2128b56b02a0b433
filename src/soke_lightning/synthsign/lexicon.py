"""SynthSign vocabulary: ~500 shared concepts with real English / German / Chinese words, declared as data.

Each concept has a category (which grammar slots it can fill) and the surface forms the grammar needs
(English plural / verb forms, German gender / plural / conjugation, Chinese word and measure word). Function
words ("the", "wird", "了") are not concepts: the grammar inserts them and they have no sign.

The core vocabulary (~190 everyday concepts) is declared first; the long tail (corpus version 2: more people,
animals, objects, food, places, adjectives and verbs, plus person names and city names, which are proper nouns
without article, plural or modifier) follows, so the core concepts keep their stable numbers. Every word is unique
within its language, and every inflected form names one concept, except the few listed in the tests (German
"sie" = she / they, "Spiele", "Jungen", the auxiliary "hat").
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Concept categories, in the order they are declared below.
CATEGORIES = (
    "pronoun", "person", "animal", "object", "food", "drink", "place", "weather", "time", "number",
    "verb_t", "verb_i", "verb_go", "adjective", "wh", "negation", "name", "city",
)
#: Categories of proper nouns: no article, no plural, no adjective or numeral, "nach Berlin" / "to Paris".
PROPER = ("name", "city")


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
see|see|sees|saw|sehen|sieht|gesehen|h|a|看见|person,name,animal,object
want|want|wants|wanted|wollen|will|gewollt|h|a|要|object,food,drink,animal
like|like|likes|liked|mögen|mag|gemocht|h|a|喜欢|person,name,animal,object,food,drink,place,city
love|love|loves|loved|lieben|liebt|geliebt|h|a|爱|person,name,animal
help|help|helps|helped|helfen|hilft|geholfen|h|d|帮助|person,name
buy|buy|buys|bought|kaufen|kauft|gekauft|h|a|买|object,food,drink
read|read|reads|read|lesen|liest|gelesen|h|a|读|book_like
write|write|writes|wrote|schreiben|schreibt|geschrieben|h|a|写|book_like
sell|sell|sells|sold|verkaufen|verkauft|verkauft|h|a|卖|object,food,animal
need|need|needs|needed|brauchen|braucht|gebraucht|h|a|需要|object,food,drink
find|find|finds|found|finden|findet|gefunden|h|a|找到|object,animal
open|open|opens|opened|öffnen|öffnet|geöffnet|h|a|打开|openable
clean|clean|cleans|cleaned|putzen|putzt|geputzt|h|a|打扫|cleanable
visit|visit|visits|visited|besuchen|besucht|besucht|h|a|拜访|person,name,place,city
call|call|calls|called|anrufen|ruft an|angerufen|h|a|打电话给|person,name
meet|meet|meets|met|treffen|trifft|getroffen|h|a|见|person,name
cook|cook|cooks|cooked|kochen|kocht|gekocht|h|a|做|food
bring|bring|brings|brought|bringen|bringt|gebracht|h|a|带|object,food,drink
watch|watch|watches|watched|schauen|schaut|geschaut|h|a|看|screen
have|have|has|had|haben|hat|gehabt|h|a|有|person,animal,object,food
lose|lose|loses|lost|verlieren|verliert|verloren|h|a|丢|object,animal
forget|forget|forgets|forgot|vergessen|vergisst|vergessen|h|a|忘记|object,person,name
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

# ------------------------------------------------------------------------------------------------ the long tail
# Same formats as the core tables above; declared after them so the core concepts keep their numbers.

_NOUNS_TAIL = {
    "person": """
nurse|nurse||f|Krankenschwester|Krankenschwestern|护士|个
farmer|farmer||m|Bauer|Bauern|农民|个
driver|driver||m|Fahrer|Fahrer|司机|个
artist|artist||f|Künstlerin|Künstlerinnen|艺术家|位
singer|singer||f|Sängerin|Sängerinnen|歌手|位
pilot|pilot||m|Pilot|Piloten|飞行员|个
soldier|soldier||m|Soldat|Soldaten|士兵|个
king|king||m|König|Könige|国王|位
queen|queen||f|Königin|Königinnen|王后|位
grandfather|grandfather||m|Opa|Opas|爷爷|个
uncle|uncle||m|Onkel|Onkel|叔叔|个
aunt|aunt||f|Tante|Tanten|阿姨|个
son|son||m|Sohn|Söhne|儿子|个
daughter|daughter||f|Tochter|Töchter|女儿|个
husband|husband||m|Ehemann|Ehemänner|丈夫|个
wife|wife|wives|f|Ehefrau|Ehefrauen|妻子|个
guest|guest||m|Gast|Gäste|客人|位
tourist|tourist||m|Tourist|Touristen|游客|个
waiter|waiter||m|Kellner|Kellner|服务员|个
dentist|dentist||m|Zahnarzt|Zahnärzte|牙医|个
lawyer|lawyer||f|Anwältin|Anwältinnen|律师|位
engineer|engineer||m|Ingenieur|Ingenieure|工程师|个
baker|baker||m|Bäcker|Bäcker|面包师|个
scientist|scientist||f|Forscherin|Forscherinnen|科学家|位
firefighter|firefighter||f|Feuerwehrfrau|Feuerwehrfrauen|消防员|个
thief|thief|thieves|m|Dieb|Diebe|小偷|个
customer|customer||m|Kunde|Kunden|顾客|位
prince|prince||m|Prinz|Prinzen|王子|个
actor|actor||m|Schauspieler|Schauspieler|演员|个
""",
    "animal": """
mouse|mouse|mice|f|Maus|Mäuse|老鼠|只
rabbit|rabbit||n|Kaninchen|Kaninchen|兔子|只
sheep|sheep|sheep|n|Schaf|Schafe|羊|只
pig|pig||n|Schwein|Schweine|猪|头
hen|hen||n|Huhn|Hühner|母鸡|只
duck|duck||f|Ente|Enten|鸭子|只
lion|lion||m|Löwe|Löwen|狮子|只
tiger|tiger||m|Tiger|Tiger|老虎|只
bear|bear||m|Bär|Bären|熊|只
elephant|elephant||m|Elefant|Elefanten|大象|头
monkey|monkey||m|Affe|Affen|猴子|只
snake|snake||f|Schlange|Schlangen|蛇|条
frog|frog||m|Frosch|Frösche|青蛙|只
wolf|wolf|wolves|m|Wolf|Wölfe|狼|只
fox|fox||m|Fuchs|Füchse|狐狸|只
deer|deer|deer|m|Hirsch|Hirsche|鹿|只
goat|goat||f|Ziege|Ziegen|山羊|只
bee|bee||f|Biene|Bienen|蜜蜂|只
butterfly|butterfly||m|Schmetterling|Schmetterlinge|蝴蝶|只
owl|owl||f|Eule|Eulen|猫头鹰|只
penguin|penguin||m|Pinguin|Pinguine|企鹅|只
turtle|turtle||f|Schildkröte|Schildkröten|乌龟|只
donkey|donkey||m|Esel|Esel|驴|头
camel|camel||n|Kamel|Kamele|骆驼|头
spider|spider||f|Spinne|Spinnen|蜘蛛|只
""",
    "object": """
umbrella|umbrella||m|Regenschirm|Regenschirme|雨伞|把
knife|knife|knives|n|Messer|Messer|刀|把
spoon|spoon||m|Löffel|Löffel|勺子|把
fork|fork||f|Gabel|Gabeln|叉子|把
plate|plate||m|Teller|Teller|盘子|个
bottle|bottle||f|Flasche|Flaschen|瓶子|个
glass|glass||n|Glas|Gläser|玻璃杯|个
lamp|lamp||f|Lampe|Lampen|灯|个
sofa|sofa||n|Sofa|Sofas|沙发|张
mirror|mirror||m|Spiegel|Spiegel|镜子|个
camera|camera||f|Kamera|Kameras|相机|部
pillow|pillow||n|Kissen|Kissen|枕头|个
blanket|blanket||f|Decke|Decken|毯子|条
towel|towel||n|Handtuch|Handtücher|毛巾|条
shirt|shirt||n|Hemd|Hemden|衬衫|件
dress|dress||n|Kleid|Kleider|裙子|条
jacket|jacket||f|Jacke|Jacken|夹克|件
hat|hat||m|Hut|Hüte|帽子|个
sock|sock||f|Socke|Socken|袜子|只
glove|glove||m|Handschuh|Handschuhe|手套|只
box|box||f|Kiste|Kisten|盒子|个
toy|toy||n|Spielzeug|Spielzeuge|玩具|个
doll|doll||f|Puppe|Puppen|娃娃|个
kite|kite||m|Drachen|Drachen|风筝|个
guitar|guitar||f|Gitarre|Gitarren|吉他|把
violin|violin||f|Geige|Geigen|小提琴|把
drum|drum||f|Trommel|Trommeln|鼓|个
candle|candle||f|Kerze|Kerzen|蜡烛|根
map|map||f|Landkarte|Landkarten|地图|张
card|card||f|Karte|Karten|卡片|张
stamp|stamp||f|Briefmarke|Briefmarken|邮票|张
notebook|notebook||n|Heft|Hefte|笔记本|本
pencil|pencil||m|Bleistift|Bleistifte|铅笔|根
pot|pot||m|Topf|Töpfe|锅|个
basket|basket||m|Korb|Körbe|篮子|个
rope|rope||n|Seil|Seile|绳子|根
brush|brush||f|Bürste|Bürsten|刷子|把
boat|boat||n|Boot|Boote|船|条
train|train||m|Zug|Züge|火车|辆
bus|bus||m|Bus|Busse|公共汽车|辆
motorcycle|motorcycle||n|Motorrad|Motorräder|摩托车|辆
tent|tent||n|Zelt|Zelte|帐篷|个
ring|ring||m|Ring|Ringe|戒指|个
necklace|necklace||f|Kette|Ketten|项链|条
wallet|wallet||f|Brieftasche|Brieftaschen|钱包|个
coin|coin||f|Münze|Münzen|硬币|个
balloon|balloon||m|Luftballon|Luftballons|气球|个
magazine|magazine||f|Zeitschrift|Zeitschriften|杂志|本
dictionary|dictionary||n|Wörterbuch|Wörterbücher|词典|本
photo|photo||n|Foto|Fotos|照片|张
television|television||m|Fernseher|Fernseher|电视|台
fridge|fridge||m|Kühlschrank|Kühlschränke|冰箱|个
oven|oven||m|Ofen|Öfen|烤箱|个
carpet|carpet||m|Teppich|Teppiche|地毯|块
cupboard|cupboard||m|Schrank|Schränke|柜子|个
shelf|shelf|shelves|n|Regal|Regale|书架|个
suitcase|suitcase||m|Koffer|Koffer|行李箱|个
backpack|backpack||m|Rucksack|Rucksäcke|背包|个
helmet|helmet||m|Helm|Helme|头盔|个
ladder|ladder||f|Leiter|Leitern|梯子|把
hammer|hammer||m|Hammer|Hämmer|锤子|把
bucket|bucket||m|Eimer|Eimer|桶|个
soap|soap||f|Seife|Seifen|肥皂|块
toothbrush|toothbrush||f|Zahnbürste|Zahnbürsten|牙刷|把
comb|comb||m|Kamm|Kämme|梳子|把
belt|belt||m|Gürtel|Gürtel|腰带|条
scarf|scarf|scarves|m|Schal|Schals|围巾|条
boot|boot||m|Stiefel|Stiefel|靴子|只
coat|coat||m|Mantel|Mäntel|大衣|件
story|story||f|Geschichte|Geschichten|故事|个
""",
    "food": """
orange|orange||f|Orange|Orangen|橙子|个
pear|pear||f|Birne|Birnen|梨|个
strawberry|strawberry||f|Erdbeere|Erdbeeren|草莓|个
lemon|lemon||f|Zitrone|Zitronen|柠檬|个
cherry|cherry||f|Kirsche|Kirschen|樱桃|个
tomato|tomato|tomatoes|f|Tomate|Tomaten|西红柿|个
potato|potato|potatoes|f|Kartoffel|Kartoffeln|土豆|个
carrot|carrot||f|Karotte|Karotten|胡萝卜|根
onion|onion||f|Zwiebel|Zwiebeln|洋葱|个
cucumber|cucumber||f|Gurke|Gurken|黄瓜|根
cheese|cheese|cheese|m|Käse|Käse|奶酪|块
sausage|sausage||f|Wurst|Würste|香肠|根
pizza|pizza||f|Pizza|Pizzas|披萨|个
sandwich|sandwich||n|Sandwich|Sandwiches|三明治|个
cookie|cookie||m|Keks|Kekse|饼干|块
chocolate|chocolate|chocolate|f|Schokolade|Schokolade|巧克力|块
ice_cream|ice cream|ice cream|n|Eis|Eis|冰淇淋|个
salad|salad||m|Salat|Salate|沙拉|份
butter|butter|butter|f|Butter|Butter|黄油|块
honey|honey|honey|m|Honig|Honig|蜂蜜|份
sugar|sugar|sugar|m|Zucker|Zucker|糖|块
peach|peach||m|Pfirsich|Pfirsiche|桃子|个
mango|mango|mangoes|f|Mango|Mangos|芒果|个
nut|nut||f|Nuss|Nüsse|坚果|个
pancake|pancake||m|Pfannkuchen|Pfannkuchen|煎饼|个
""",
    "drink": """
lemonade|lemonade||f|Limonade|Limonaden|柠檬水|杯
cocoa|cocoa|cocoa|m|Kakao|Kakaos|可可|杯
cola|cola||f|Cola|Colas|可乐|杯
yogurt|yogurt||m|Joghurt|Joghurts|酸奶|杯
""",
    "place": """
hotel|hotel||n|Hotel|Hotels|酒店|家
bank|bank||f|Bank|Banken|银行|家
bakery|bakery||f|Bäckerei|Bäckereien|面包店|家
pharmacy|pharmacy||f|Apotheke|Apotheken|药店|家
market|market||m|Markt|Märkte|市场|个
supermarket|supermarket||m|Supermarkt|Supermärkte|超市|家
museum|museum||n|Museum|Museen|博物馆|个
cinema|cinema||n|Kino|Kinos|电影院|家
theatre|theatre||n|Theater|Theater|剧院|个
stadium|stadium||n|Stadion|Stadien|体育场|个
farm|farm||m|Bauernhof|Bauernhöfe|农场|个
forest|forest||m|Wald|Wälder|森林|片
lake|lake||m|See|Seen|湖|个
river|river||m|Fluss|Flüsse|河|条
sea|sea||n|Meer|Meere|大海|片
island|island||f|Insel|Inseln|岛|个
bridge|bridge||f|Brücke|Brücken|桥|座
tower|tower||m|Turm|Türme|塔|座
castle|castle||n|Schloss|Schlösser|城堡|座
harbour|harbour||m|Hafen|Häfen|港口|个
street|street||f|Straße|Straßen|街|条
bathroom|bathroom||n|Bad|Bäder|浴室|个
bedroom|bedroom||n|Schlafzimmer|Schlafzimmer|卧室|个
living_room|living room||n|Wohnzimmer|Wohnzimmer|客厅|个
classroom|classroom||n|Klassenzimmer|Klassenzimmer|教室|个
factory|factory||f|Fabrik|Fabriken|工厂|家
playground|playground||m|Spielplatz|Spielplätze|游乐场|个
swimming_pool|swimming pool||n|Schwimmbad|Schwimmbäder|游泳池|个
gym|gym||f|Turnhalle|Turnhallen|体育馆|个
desert|desert||f|Wüste|Wüsten|沙漠|片
cafe|café||n|Café|Cafés|咖啡馆|家
temple|temple||m|Tempel|Tempel|寺庙|座
""",
}

#: German weak (n-declension) masculine nouns: the accusative / dative singular takes -(e)n, which for all of them
#: is the plural form ("den Studenten", "dem Löwen").
DE_WEAK_NOUNS = frozenset({
    "student", "neighbour", "boy", "police", "farmer", "pilot", "soldier", "tourist", "customer", "prince", "lion",
    "bear", "elephant", "monkey",
})

_TIMES_TAIL = """
tuesday|on Tuesday|am Dienstag|星期二|future
sunday|on Sunday|am Sonntag|星期天|future
afternoon|in the afternoon|am Nachmittag|下午|present
next_month|next month|nächsten Monat|下个月|future
last_month|last month|letzten Monat|上个月|past
next_year|next year|nächstes Jahr|明年|future
"""

_VERBS_T_TAIL = """
carry|carry|carries|carried|tragen|trägt|getragen|h|a|提|object
wash|wash|washes|washed|waschen|wäscht|gewaschen|h|a|洗|washable
take|take|takes|took|nehmen|nimmt|genommen|h|a|拿|object,food,drink
catch|catch|catches|caught|fangen|fängt|gefangen|h|a|抓|animal
know|know|knows|knew|kennen|kennt|gekannt|h|a|认识|person,name,city
ask|ask|asks|asked|fragen|fragt|gefragt|h|a|问|person,name
order|order|orders|ordered|bestellen|bestellt|bestellt|h|a|点|food,drink
taste|taste|tastes|tasted|probieren|probiert|probiert|h|a|尝|food,drink
throw|throw|throws|threw|werfen|wirft|geworfen|h|a|扔|throwable
choose|choose|chooses|chose|wählen|wählt|gewählt|h|a|选|object,food,drink
borrow|borrow|borrows|borrowed|leihen|leiht|geliehen|h|a|借|object
hear|hear|hears|heard|hören|hört|gehört|h|a|听见|person,name,animal
kiss|kiss|kisses|kissed|küssen|küsst|geküsst|h|a|亲|person,name,animal
use|use|uses|used|benutzen|benutzt|benutzt|h|a|用|object
feed|feed|feeds|fed|füttern|füttert|gefüttert|h|a|喂|animal
photograph|photograph|photographs|photographed|fotografieren|fotografiert|fotografiert|h|a|拍|person,name,animal,place,city
"""

_VERBS_I_TAIL = """
sing|sing|sings|sang|singen|singt|gesungen|h|唱歌
sit|sit|sits|sat|sitzen|sitzt|gesessen|h|坐
fall|fall|falls|fell|fallen|fällt|gefallen|s|摔倒
shout|shout|shouts|shouted|schreien|schreit|geschrien|h|喊
stay|stay|stays|stayed|bleiben|bleibt|geblieben|s|留下
ride|ride|rides|rode|reiten|reitet|geritten|s|骑马
jump|jump|jumps|jumped|springen|springt|gesprungen|s|跳
"""

_VERBS_GO_TAIL = """
travel|travel|travels|travelled|reisen|reist|gereist|s|to|旅行到
move|move|moves|moved|ziehen|zieht|gezogen|s|to|搬到
come|come|comes|came|kommen|kommt|gekommen|s|to|来
hike|hike|hikes|hiked|wandern|wandert|gewandert|s|to|徒步去
"""

_ADJECTIVES_TAIL = """
long|long|lang|长
short|short|kurz|短
quiet|quiet|ruhig|安静
loud|loud|laut|吵
dirty|dirty|schmutzig|脏
strong|strong|stark|强壮
weak|weak|schwach|虚弱
rich|rich|reich|富有
poor|poor|arm|穷
funny|funny|lustig|有趣
boring|boring|langweilig|无聊
easy|easy|leicht|容易
difficult|difficult|schwierig|难
heavy|heavy|schwer|重
bright|bright|hell|明亮
sweet|sweet|süß|甜
salty|salty|salzig|咸
friendly|friendly|freundlich|友好
angry|angry|wütend|生气
smart|smart|klug|聪明
brave|brave|mutig|勇敢
famous|famous|berühmt|著名
yellow|yellow|gelb|黄
brown|brown|braun|棕色
grey|grey|grau|灰色
empty|empty|leer|空
full|full|voll|满
wet|wet|nass|湿
dry|dry|trocken|干
slow|slow|langsam|慢
round|round|rund|圆
soft|soft|weich|软
hard|hard|hart|硬
busy|busy|beschäftigt|忙
"""

# Person names: id | en | de | zh (transliteration). Names of people are not translated.
_NAMES = """
anna|Anna|Anna|安娜
peter|Peter|Peter|彼得
maria|Maria|Maria|玛丽亚
thomas|Thomas|Thomas|托马斯
michael|Michael|Michael|迈克尔
paul|Paul|Paul|保罗
lisa|Lisa|Lisa|丽莎
laura|Laura|Laura|劳拉
david|David|David|大卫
daniel|Daniel|Daniel|丹尼尔
sarah|Sarah|Sarah|莎拉
julia|Julia|Julia|朱莉娅
martin|Martin|Martin|马丁
max|Max|Max|马克斯
emma|Emma|Emma|艾玛
sophie|Sophie|Sophie|索菲
lukas|Lukas|Lukas|卢卡斯
felix|Felix|Felix|菲利克斯
hannah|Hannah|Hannah|汉娜
lena|Lena|Lena|莉娜
tom|Tom|Tom|汤姆
kevin|Kevin|Kevin|凯文
linda|Linda|Linda|琳达
susan|Susan|Susan|苏珊
robert|Robert|Robert|罗伯特
james|James|James|詹姆斯
emily|Emily|Emily|艾米丽
oliver|Oliver|Oliver|奥利弗
jack|Jack|Jack|杰克
lucy|Lucy|Lucy|露西
anton|Anton|Anton|安东
clara|Clara|Clara|克拉拉
eva|Eva|Eva|伊娃
frank|Frank|Frank|弗兰克
helen|Helen|Helen|海伦
karl|Karl|Karl|卡尔
nina|Nina|Nina|尼娜
oskar|Oskar|Oskar|奥斯卡
simon|Simon|Simon|西蒙
tina|Tina|Tina|蒂娜
alice|Alice|Alice|爱丽丝
leo|Leo|Leo|利奥
mia|Mia|Mia|米娅
noah|Noah|Noah|诺亚
hugo|Hugo|Hugo|雨果
otto|Otto|Otto|奥托
greta|Greta|Greta|格蕾塔
heidi|Heidi|Heidi|海蒂
li_ming|Li Ming|Li Ming|李明
wang_fang|Wang Fang|Wang Fang|王芳
zhang_wei|Zhang Wei|Zhang Wei|张伟
liu_yang|Liu Yang|Liu Yang|刘洋
chen_jing|Chen Jing|Chen Jing|陈静
zhao_lei|Zhao Lei|Zhao Lei|赵磊
"""

# Cities: id | en | de | zh. German and English use "to" = "nach" and "in" without an article.
_CITIES = """
paris|Paris|Paris|巴黎
london|London|London|伦敦
berlin|Berlin|Berlin|柏林
rome|Rome|Rom|罗马
vienna|Vienna|Wien|维也纳
munich|Munich|München|慕尼黑
hamburg|Hamburg|Hamburg|汉堡
cologne|Cologne|Köln|科隆
madrid|Madrid|Madrid|马德里
tokyo|Tokyo|Tokio|东京
beijing|Beijing|Peking|北京
shanghai|Shanghai|Shanghai|上海
new_york|New York|New York|纽约
moscow|Moscow|Moskau|莫斯科
prague|Prague|Prag|布拉格
amsterdam|Amsterdam|Amsterdam|阿姆斯特丹
zurich|Zurich|Zürich|苏黎世
athens|Athens|Athen|雅典
cairo|Cairo|Kairo|开罗
sydney|Sydney|Sydney|悉尼
toronto|Toronto|Toronto|多伦多
chicago|Chicago|Chicago|芝加哥
boston|Boston|Boston|波士顿
dublin|Dublin|Dublin|都柏林
lisbon|Lisbon|Lissabon|里斯本
warsaw|Warsaw|Warschau|华沙
stockholm|Stockholm|Stockholm|斯德哥尔摩
oslo|Oslo|Oslo|奥斯陆
venice|Venice|Venedig|威尼斯
milan|Milan|Mailand|米兰
brussels|Brussels|Brüssel|布鲁塞尔
istanbul|Istanbul|Istanbul|伊斯坦布尔
hong_kong|Hong Kong|Hongkong|香港
seoul|Seoul|Seoul|首尔
bangkok|Bangkok|Bangkok|曼谷
dresden|Dresden|Dresden|德累斯顿
leipzig|Leipzig|Leipzig|莱比锡
frankfurt|Frankfurt|Frankfurt|法兰克福
stuttgart|Stuttgart|Stuttgart|斯图加特
nanjing|Nanjing|Nanjing|南京
guangzhou|Guangzhou|Guangzhou|广州
chengdu|Chengdu|Chengdu|成都
hangzhou|Hangzhou|Hangzhou|杭州
wuhan|Wuhan|Wuhan|武汉
shenzhen|Shenzhen|Shenzhen|深圳
kyoto|Kyoto|Kyoto|京都
"""

#: Object sub-categories used by verb selection restrictions.
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "book_like": ("book", "letter", "newspaper", "magazine", "dictionary", "story", "map"),
    "openable": ("door", "window", "bag", "book", "letter", "gift", "box", "bottle", "suitcase", "fridge", "oven",
                 "backpack", "umbrella", "wallet"),
    "cleanable": ("house", "kitchen", "car", "table", "window", "cup", "shoe", "bed", "fridge", "oven", "carpet",
                  "plate", "bathroom"),
    "screen": ("film", "game", "picture", "television", "photo"),
    "washable": ("car", "shirt", "dress", "towel", "sock", "plate", "cup", "glass", "dog", "jacket"),
    "throwable": ("ball", "balloon", "key", "shoe", "apple", "coin", "pillow"),
}


def _rows(table: str) -> list[list[str]]:
    return [line.split("|") for line in table.strip().splitlines() if line.strip()]


def _en_plural(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _nouns(out: list[Concept], tables: dict[str, str]) -> None:
    for category, table in tables.items():
        for cid, en, en_pl, gender, de, de_pl, zh, measure in _rows(table):
            forms = {"en_plural": en_pl or _en_plural(en), "de_gender": gender, "de_plural": de_pl,
                     "zh_measure": measure}
            if cid in DE_WEAK_NOUNS:
                forms["de_weak"] = True
            out.append(Concept(cid, category, en, de, zh, forms))


def _verbs(out: list[Concept], table_t: str, table_i: str, table_go: str) -> None:
    for cid, en, en3, enp, de, de3, depart, aux, case, zh, objects in _rows(table_t):
        out.append(Concept(cid, "verb_t", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux,
            "de_case": case, "objects": tuple(objects.split(",")),
        }))
    for cid, en, en3, enp, de, de3, depart, aux, zh in _rows(table_i):
        out.append(Concept(cid, "verb_i", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux,
        }))
    for cid, en, en3, enp, de, de3, depart, aux, prep, zh in _rows(table_go):
        out.append(Concept(cid, "verb_go", en, de, zh, {
            "en_3sg": en3, "en_past": enp, "de_3sg": de3, "de_participle": depart, "de_aux": aux, "prep": prep,
        }))


def _build() -> tuple[Concept, ...]:
    out: list[Concept] = []
    for cid, en, de, zh, pn in _rows(_PRONOUNS):
        out.append(Concept(cid, "pronoun", en, de, zh, {"person": pn}))
    _nouns(out, _NOUNS)
    for cid, en, de, zh, tense in _rows(_TIMES):
        out.append(Concept(cid, "time", en, de, zh, {"tense": tense}))
    for cid, en, de, zh, value in _rows(_NUMBERS):
        out.append(Concept(cid, "number", en, de, zh, {"value": int(value)}))
    _verbs(out, _VERBS_T, _VERBS_I, _VERBS_GO)
    for cid, en, de, zh in _rows(_ADJECTIVES):
        out.append(Concept(cid, "adjective", en, de, zh))
    for cid, en, de, zh in _rows(_WH):
        out.append(Concept(cid, "wh", en, de, zh))
    out.append(Concept("not", "negation", "not", "nicht", "不"))
    # the long tail (corpus version 2), after the core so that the core concepts keep their numbers
    _nouns(out, _NOUNS_TAIL)
    for cid, en, de, zh, tense in _rows(_TIMES_TAIL):
        out.append(Concept(cid, "time", en, de, zh, {"tense": tense}))
    _verbs(out, _VERBS_T_TAIL, _VERBS_I_TAIL, _VERBS_GO_TAIL)
    for cid, en, de, zh in _rows(_ADJECTIVES_TAIL):
        out.append(Concept(cid, "adjective", en, de, zh))
    for category, table in (("name", _NAMES), ("city", _CITIES)):
        for cid, en, de, zh in _rows(table):
            out.append(Concept(cid, category, en, de, zh, {"proper": True}))
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
