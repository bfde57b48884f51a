"""Real-shaped SRT files for the storage benchmark, generated from word and phrase lists written
for this project (public domain, no fixture): episode-length files of 20-80 KB with CRLF line
ends, a byte order mark on some UTF-8 files, Latin-1 or UTF-8 text in six languages (Russian in
UTF-8 only), per-show character names, italics, sound cues, two-speaker cues and the editor's
credit that most Addic7ed files end with. Deterministic for a seed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

MIN_BYTES, MAX_BYTES = 20_000, 80_000
SYLLABLES = "ka ro mi len dar tho bel vin sa ric ash mor el ty jen hal nor qui zed fa".split()
EDITORS = "explosiveskull n17t01 elderman ScruffyJanitor GoldenBeard VitoSilans honeybunny".split()


@dataclass(frozen=True)
class Language:
    """Words (most frequent first), whole phrases, sound cues; `latin1`: may be Latin-1 encoded."""

    code: str
    words: list[str]
    phrases: list[str]
    sounds: list[str]
    latin1: bool
    # Zipf-like weights: common words dominate, as in speech.
    weights: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cumulative = list(itertools.accumulate(1 / (rank + 8) for rank in range(len(self.words))))
        object.__setattr__(self, "weights", cumulative)


def _lang(code: str, words: str, phrases: str, sounds: str, latin1: bool) -> Language:
    return Language(code, words.split(), phrases.split("|"), sounds.split("|"), latin1)


LANGUAGES = [
    _lang(
        "en",
        """you I the to a it and that what is of me we this in he know no don't have your for my
        be it's on do not just was I'm are with can get here all so that's there right what's but
        him up go out they she like now if about one come gonna yeah want okay oh think her how see
        at well did got us why from you're let's going can't back look need who tell take something
        really time been could good when sorry never by mean would them where or should thank then
        his our some way over make only thing please because man wait love guys said maybe sure""",
        "I don't know|What are you doing|Are you okay|I'm sorry|Thank you|Come on|Let's go|Oh, my "
        "God|What happened|I need to talk to you|We have to go|Get out of here|What do you mean|I "
        "told you|You know what|Where are you going|Don't worry|It's okay|Hold on|Wait a minute|"
        "Listen to me|I love you|What's going on|I have no idea|I'll be right back|Of course|Okay",
        "door opens|phone ringing|sighs|laughs|gunshot|music playing|chatter|groans",
        False,
    ),
    _lang(
        "fr",
        """je de pas le la que tu à et un les vous est ce il on en ne ça c'est des pour qui me une
        mais bien moi nous oui non te fait suis du avec tout sur là ai elle as au dans veux y va
        faire rien quoi plus sais être peux était lui comme se mon sa si ton où vais allez été
        très ils aussi même alors quand juste avez encore toi vraiment ici après ma peut déjà
        quelque chose maintenant dire pourquoi jamais père mère désolé frère soeur là-bas été""",
        "Je ne sais pas|Qu'est-ce que tu fais|Ça va|Je suis désolé|Merci beaucoup|Allez, viens|"
        "On y va|Mon Dieu|Qu'est-ce qui s'est passé|Il faut qu'on parle|Sors d'ici|Tu es sûr|"
        "Ne t'inquiète pas|Attends une minute|Écoute-moi|Je t'aime|Bien sûr|Bonne nuit|Ça suffit|"
        "Je reviens tout de suite|C'est pas grave|Tu te fous de moi|Où est-ce que tu vas",
        "porte qui s'ouvre|téléphone|soupire|rires|coup de feu|musique|brouhaha",
        True,
    ),
    _lang(
        "es",
        """que de no a la el y es en lo un por qué me una te los se con para mi está si bien pero
        yo eso las sí su tu aquí del al como le más esto ya todo esta vamos muy hay ahora algo
        estoy tengo nos tú nada cuando ha este sé estás así puedo cómo quiero él sólo soy tiene
        gracias o dónde era ser fue hacer también hace mucho bueno ella quién eres favor año
        señor niño mañana corazón después siempre nunca necesito contigo mamá papá está allí""",
        "No lo sé|¿Qué estás haciendo?|¿Estás bien?|Lo siento|Muchas gracias|Vamos|Dios mío|"
        "¿Qué pasó?|Tenemos que hablar|Sal de aquí|¿Estás seguro?|No te preocupes|Espera un "
        "momento|Escúchame|Te quiero|Por supuesto|Buenas noches|Ya basta|Vuelvo enseguida|"
        "No pasa nada|¿Adónde vas?|¡Cállate!|Claro que sí",
        "puerta que se abre|teléfono sonando|suspira|risas|disparo|música|murmullo",
        True,
    ),
    _lang(
        "de",
        """ich du die der und nicht das ist zu sie es wir was ein in mir den mit ja sie dich ich's
        hier habe auf so für eine mich hast nein wie war ist's noch dass aber bin da sind nur kann
        wenn auch schon weiß los mal dann gut jetzt haben wird alles etwas bitte können mein
        vielleicht muss wo warum danke doch sein immer einen gehen okay kommen wieder ihr machen
        müssen Mädchen Frau Herr schön später Tür Straße natürlich wäre würde hätte Entschuldigung""",
        "Ich weiß nicht|Was machst du da|Alles in Ordnung|Es tut mir leid|Vielen Dank|Komm schon|"
        "Gehen wir|Oh mein Gott|Was ist passiert|Wir müssen reden|Raus hier|Bist du sicher|Keine "
        "Sorge|Warte mal|Hör mir zu|Ich liebe dich|Natürlich|Gute Nacht|Das reicht|Ich bin gleich "
        "zurück|Schon gut|Wohin gehst du|Halt den Mund",
        "Tür öffnet sich|Telefon klingelt|seufzt|lacht|Schuss|Musik|Stimmengewirr",
        True,
    ),
    _lang(
        "pt",
        """que não o de a é e você eu um isso me se para está uma em do da com por os te vamos
        mas bem sim estou meu aqui tem ele só quando como foi ser mais tudo isso nós ela seu
        sua agora então aqui vai sei pode muito nada coisa quem onde porque obrigado tenho
        ainda fazer precisa acho dele dela sempre nunca coração irmão mãe pai amanhã já até""",
        "Não sei|O que está fazendo|Você está bem|Desculpe|Muito obrigado|Vamos lá|Meu Deus|"
        "O que aconteceu|Precisamos conversar|Sai daqui|Tem certeza|Não se preocupe|Espere um "
        "minuto|Escute|Eu te amo|Claro|Boa noite|Chega|Já volto|Não faz mal|Aonde você vai",
        "porta abrindo|telefone tocando|suspira|risos|tiro|música|conversa",
        True,
    ),
    _lang(
        "ru",
        """я не ты что в и на это он мы а с вы как да так нет она у меня тебя все мне но был
        его здесь ну вот то за мне по бы они есть если же ещё было знаю может её теперь
        просто хорошо тут когда очень только где нам почему надо сейчас что-то кто ладно
        спасибо давай хочу тебе себя уже будет мама папа люблю прости пожалуйста никогда""",
        "Я не знаю|Что ты делаешь|Ты в порядке|Прости меня|Большое спасибо|Давай|Пойдём|"
        "Боже мой|Что случилось|Нам надо поговорить|Убирайся отсюда|Ты уверен|Не волнуйся|"
        "Подожди минуту|Послушай меня|Я люблю тебя|Конечно|Спокойной ночи|Хватит|Я сейчас вернусь",
        "дверь открывается|звонит телефон|вздыхает|смех|выстрел|музыка|гул голосов",
        False,
    ),
]


def _stamp(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _clause(rng: random.Random, lang: Language, names: list[str]) -> str:
    if rng.random() < 0.4:
        return rng.choice(lang.phrases)
    words = []
    for _ in range(max(1, int(rng.gammavariate(2.0, 1.8)))):
        roll = rng.random()
        if roll < 0.03:
            words.append(rng.choice(names))
        elif roll < 0.06:  # rare words no dictionary can know
            words.append("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
        else:
            words.append(rng.choices(lang.words, cum_weights=lang.weights)[0])
    return " ".join(words)


def _sentence(rng: random.Random, lang: Language, names: list[str]) -> str:
    parts = [_clause(rng, lang, names) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    if rng.random() < 0.08:
        parts.append(rng.choice(names))
    text = (", " if rng.random() < 0.5 else " ").join(parts)
    end = "" if text[-1] in "?!" else rng.choice([".", ".", ".", "?", "!", "...", ","])
    return text[0].upper() + text[1:] + end


def _cue_lines(rng: random.Random, lang: Language, names: list[str]) -> list[str]:
    roll = rng.random()
    if roll < 0.04:
        return [f"[{rng.choice(lang.sounds)}]"]
    if roll < 0.14:  # two speakers in one cue
        return [f"- {_sentence(rng, lang, names)}", f"- {_sentence(rng, lang, names)}"]
    text, lines = _sentence(rng, lang, names), []
    cut = text.rfind(" ", 0, 42)
    if len(text) > 42 and cut > 0:  # wrap at 42 columns, as subtitle editors do
        lines, text = [text[:cut]], text[cut + 1 :]
    lines.append(text)
    return [f"<i>{line}</i>" for line in lines] if rng.random() < 0.08 else lines


def make_srt(rng: random.Random, lang: Language, names: list[str], target_bytes: int) -> bytes:
    """One file of about `target_bytes` (it stops at the first cue past it), encoded as a real
    upload would be: Latin-1 for about half of the Western European files, else UTF-8 with a
    byte order mark one time in four."""
    at, blocks, size = rng.randint(1_000, 120_000), [], 0
    while size < target_bytes:
        lines = _cue_lines(rng, lang, names)
        duration = int(600 + 55 * sum(map(len, lines)) * rng.uniform(0.7, 1.4))
        timing = f"{_stamp(at)} --> {_stamp(at + duration)}"
        blocks.append(f"{len(blocks) + 1}\r\n{timing}\r\n" + "\r\n".join(lines))
        size += len(blocks[-1].encode()) + 4  # bytes: Cyrillic takes two per letter
        at += duration + int(rng.expovariate(1 / 1800)) + 40
    if rng.random() < 0.6:  # most Addic7ed files carry the editor's credit
        credit = f"Sync and corrections by {rng.choice(EDITORS)}\r\nwww.addic7ed.com"
        blocks.append(f"{len(blocks) + 1}\r\n{_stamp(at)} --> {_stamp(at + 3000)}\r\n{credit}")
    text = "\r\n\r\n".join(blocks) + "\r\n\r\n"
    if lang.latin1 and rng.random() < 0.5:
        return text.encode("latin-1")
    return (b"\xef\xbb\xbf" if rng.random() < 0.25 else b"") + text.encode()


def make_corpus(seed: int, shows: int, per_show: int) -> list[list[bytes]]:
    """Per show: one language, its own character names, `per_show` files of 20-80 KB."""
    rng = random.Random(seed)
    corpus = []
    for show in range(shows):
        lang = LANGUAGES[show % len(LANGUAGES)]
        names = ["".join(rng.choices(SYLLABLES, k=3)).capitalize() for _ in range(12)]
        sizes = [rng.randint(MIN_BYTES, MAX_BYTES - 2_000) for _ in range(per_show)]
        corpus.append([make_srt(rng, lang, names, size) for size in sizes])
    return corpus
