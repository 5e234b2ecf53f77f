"""The book's two toy seq2seq tasks, generated in code: date normalisation and addition.

Both are made from a seed alone (no download), so a run is reproduced from its command line.
Questions and answers are strings padded with spaces to a fixed length per task; an answer
starts with ``_``, the decoder's start token, as in *Deep Learning from Scratch 2* (ch. 7):

    dates:     "TUESDAY, SEPTEMBER 25, 1984   " -> "_1984-09-25"   (29 and 11 characters)
    addition:  "16+75  "                        -> "_91  "         (7 and 5 characters)

The date questions come in many surface formats (month names, abbreviations, weekdays, numeric
month-first forms with 2- or 4-digit years, ISO) and in lower, upper and title case. Every format
is unambiguous: numeric forms are always month first, and a 2-digit year ``yy`` means 19yy for
yy >= 70 and 20yy otherwise (dates run from 1970-01-01 to 2017-12-31), so a perfect model exists.
"""

import datetime
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ADDITION_ANSWER_LEN",
    "ADDITION_QUESTIONS",
    "ADDITION_QUESTION_LEN",
    "ADDITION_VOCAB",
    "DATE_ANSWER_LEN",
    "DATE_QUESTIONS",
    "DATE_QUESTION_LEN",
    "DATE_VOCAB",
    "DISTINCT_QUESTIONS",
    "START",
    "TASKS",
    "Split",
    "Vocab",
    "addition_pairs",
    "date_pairs",
    "load",
]

START = "_"  # first character of every answer: the decoder's start token
PAD = " "

_FIRST_DAY = datetime.date(1970, 1, 1)
_LAST_DAY = datetime.date(2017, 12, 31)
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH_ABBREVIATIONS = [month[:3] for month in _MONTHS]  # jan feb ... dec
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_ABBREVIATIONS = [day[:3] for day in _WEEKDAYS]  # mon tue ... sun


def _ordinal(day: int) -> str:
    if 11 <= day <= 13:
        return f"{day}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# Each format maps the fields of one date to a question. Fields: y (1994), yy ("94"), m (9),
# mm ("09"), d (7), dd ("07"), dth ("7th"), month, mon, weekday, wd (lower-case names).
_DATE_FORMATS = (
    "{month} {d}, {y}",  # september 27, 1994
    "{month} {d} {y}",  # september 27 1994
    "{month} {dth}, {y}",  # september 27th, 1994
    "{mon} {d}, {y}",  # sep 27, 1994
    "{mon} {d} {y}",  # sep 27 1994
    "{mon}. {d}, {y}",  # sep. 27, 1994
    "{d} {month} {y}",  # 27 september 1994
    "{d} {mon} {y}",  # 27 sep 1994
    "{dth} {month} {y}",  # 27th september 1994
    "{dth} of {month}, {y}",  # 27th of september, 1994
    "{dd}-{mon}-{y}",  # 27-sep-1994
    "{d} {mon}, {yy}",  # 27 sep, 94
    "{weekday}, {month} {d}, {y}",  # tuesday, september 27, 1994
    "{weekday} {d} {month} {y}",  # tuesday 27 september 1994
    "{wd}, {mon} {d}, {y}",  # tue, sep 27, 1994
    "{wd} {d} {mon} {y}",  # tue 27 sep 1994
    "{m}/{d}/{yy}",  # 9/27/94
    "{mm}/{dd}/{yy}",  # 09/27/94
    "{m}/{d}/{y}",  # 9/27/1994
    "{mm}/{dd}/{y}",  # 09/27/1994
    "{mm}.{dd}.{yy}",  # 09.27.94
    "{mm}-{dd}-{yy}",  # 09-27-94
    "{y}-{mm}-{dd}",  # 1994-09-27 (ISO)
    "{y}/{mm}/{dd}",  # 1994/09/27
    "{y}{mm}{dd}",  # 19940927
)


def _title(text: str) -> str:
    # str.title() would write "27Th"; capitalise each word's first character only.
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


_CASES = (str.lower, str.upper, _title)


def _date_question(day: datetime.date, fmt: str, case) -> str:
    fields = dict(
        y=day.year,
        yy=f"{day.year % 100:02d}",
        m=day.month,
        mm=f"{day.month:02d}",
        d=day.day,
        dd=f"{day.day:02d}",
        dth=_ordinal(day.day),
        month=_MONTHS[day.month - 1],
        mon=_MONTH_ABBREVIATIONS[day.month - 1],
        weekday=_WEEKDAYS[day.weekday()],
        wd=_WEEKDAY_ABBREVIATIONS[day.weekday()],
    )
    return case(fmt.format(**fields))


def _longest_date_question() -> int:
    # The longest names give the longest question of each format (wednesday, september, 28th).
    longest = datetime.date(1994, 9, 28)
    return max(len(_date_question(longest, fmt, str.lower)) for fmt in _DATE_FORMATS)


DATE_QUESTION_LEN = _longest_date_question()  # 29, as in the book's date.txt
DATE_ANSWER_LEN = len("_1994-09-27")
ADDITION_QUESTION_LEN = len("999+999")
ADDITION_ANSWER_LEN = len("_1998")

# How many distinct questions each task has: a request for more can never be met. Dates: 17,532
# days x 25 formats x 3 cases = 1,314,900 less the repeats (a question without letters reads the
# same in every case, "may" is both a month and its abbreviation, 10/12/94 is both m/d/yy and
# mm/dd/yy, title case leaves 05-mar-1994 lower); tests/test_training.py counts them.
DATE_QUESTIONS = 962_160
ADDITION_QUESTIONS = 1000 * 1000  # a, b in 0..999


class Vocab:
    """Character vocabulary: one id per character, id 0 is the padding space.

    encode: list of N strings of one length T -> int64 ids (N, T)
    decode: ids (N, T) -> list of N strings; ids (T,) -> one string
    """

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError(f"chars={chars!r} has repeated characters; give each once")
        self.chars = chars
        self.ids = {char: i for i, char in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"Vocab({self.chars!r})"

    def __getitem__(self, char: str) -> int:
        return self.ids[char]

    def encode(self, texts: list[str]) -> np.ndarray:
        lengths = {len(text) for text in texts}
        if len(lengths) > 1:
            raise ValueError(f"texts have lengths {sorted(lengths)}; pad them to one length first")
        try:
            rows = [[self.ids[char] for char in text] for text in texts]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in {self!r}") from None
        return np.array(rows, dtype=np.int64).reshape(len(texts), -1)

    def decode(self, ids: np.ndarray) -> list[str] | str:
        ids = np.asarray(ids)
        if ids.ndim == 1:
            return "".join(self.chars[i] for i in ids)
        return ["".join(self.chars[i] for i in row) for row in ids]


def _date_chars() -> str:
    words = _MONTHS + _WEEKDAYS + ["st", "nd", "rd", "th", "of"]
    letters = set("".join(words))
    letters |= {char.upper() for char in letters}
    return PAD + START + ",-./0123456789" + "".join(sorted(letters))


DATE_VOCAB = Vocab(_date_chars())
ADDITION_VOCAB = Vocab(PAD + START + "+0123456789")


def _unique(draw, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    pairs: dict[str, str] = {}
    for _ in range(50 * n + 1000):  # far more draws than n distinct questions ever need
        if len(pairs) == n:
            return list(pairs.items())
        question, answer = draw(rng)
        pairs.setdefault(question, answer)
    if len(pairs) < n:
        raise ValueError(f"n={n} is more distinct questions than this task can draw; ask fewer")
    return list(pairs.items())


def date_pairs(n: int, *, rng=0) -> list[tuple[str, str]]:
    """n distinct (question, answer) date pairs, padded; the same rng gives the same pairs."""
    if not 0 <= n <= DATE_QUESTIONS:
        raise ValueError(
            f"n={n} must be in 0..{DATE_QUESTIONS} (there are {DATE_QUESTIONS:,} distinct date "
            "questions)"
        )
    rng = np.random.default_rng(rng)
    days = (_LAST_DAY - _FIRST_DAY).days + 1

    def draw(rng):
        day = _FIRST_DAY + datetime.timedelta(days=int(rng.integers(days)))
        fmt = _DATE_FORMATS[rng.integers(len(_DATE_FORMATS))]
        question = _date_question(day, fmt, _CASES[rng.integers(len(_CASES))])
        return question.ljust(DATE_QUESTION_LEN), START + day.isoformat()

    return _unique(draw, n, rng)


def addition_pairs(n: int, *, rng=0) -> list[tuple[str, str]]:
    """n distinct (question, answer) pairs "a+b" -> "_" + (a + b), a and b in 0..999, padded."""
    if not 0 <= n <= ADDITION_QUESTIONS:
        raise ValueError(f"n={n} must be in 0..1000000 (there are 10^6 distinct questions)")
    rng = np.random.default_rng(rng)

    def draw(rng):
        a, b = (int(v) for v in rng.integers(1000, size=2))
        question = f"{a}+{b}".ljust(ADDITION_QUESTION_LEN)
        return question, (START + str(a + b)).ljust(ADDITION_ANSWER_LEN)

    return _unique(draw, n, rng)


TASKS = {"date": (date_pairs, DATE_VOCAB), "addition": (addition_pairs, ADDITION_VOCAB)}
DISTINCT_QUESTIONS = {"date": DATE_QUESTIONS, "addition": ADDITION_QUESTIONS}


@dataclass(frozen=True)
class Split:
    """Encoded train and test sets of one task; no question is in both.

    x_train (N, Tq), t_train (N, Ta), x_test (M, Tq), t_test (M, Ta): int64 character ids.
    """

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    vocab: Vocab


def load(task: str, *, train_size: int, test_size: int, seed=0) -> Split:
    """train_size + test_size distinct questions of ``task`` ("date" or "addition"), split."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} must be one of {sorted(TASKS)}")
    if train_size < 1 or test_size < 0:
        raise ValueError(f"train_size={train_size}, test_size={test_size}: need >= 1 and >= 0")
    if train_size + test_size > DISTINCT_QUESTIONS[task]:
        raise ValueError(
            f"train_size + test_size = {train_size + test_size:,} is more than the "
            f"{DISTINCT_QUESTIONS[task]:,} distinct questions of the {task} task; ask for fewer"
        )
    make_pairs, vocab = TASKS[task]
    pairs = make_pairs(train_size + test_size, rng=seed)
    questions = vocab.encode([q for q, _ in pairs])
    answers = vocab.encode([a for _, a in pairs])
    return Split(
        x_train=questions[:train_size],
        t_train=answers[:train_size],
        x_test=questions[train_size:],
        t_test=answers[train_size:],
        vocab=vocab,
    )
