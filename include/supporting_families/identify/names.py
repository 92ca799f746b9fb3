"""Name keys for record linkage: normalised forms, nickname groups and a phonetic blocking key.

Written for this project. The nickname table is ours: common English short forms (Bill for William, Peggy
for Margaret), spelling and transliteration variants common in London (Mohammed, Muhammad, Mohamed; Hussain,
Hussein), and anglicised forms of European names (Piotr, Peter). Names are compared after
:func:`normalise_name`, so accents and punctuation need no entries (Inês is ines, O'Brien is obrien).

Every function works on the distinct values of a column (a few thousand names, even for a million
persons), never row by row, and nothing here logs a value.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Final

# Each line is a set of names one person may be recorded under. Two names are nickname-equivalent when they
# share a line. The relation is not transitive: Harry shares a line with Henry and another with Harold, but
# Henry and Harold are different names (twins are often given names that sound alike).
_NICKNAME_TEXT: Final = """
william bill billy will willie liam
elizabeth liz lizzie beth betty eliza libby bess elspeth
robert bob bobby rob robbie bert
margaret maggie peggy meg megan madge greta
katherine catherine kathryn katharine kate kathy katie cathy kath kay kat katarzyna kasia
jennifer jenny jen jenna
michael mike mick mickey micky michal
thomas tom tommy tomasz tomek
james jim jimmy jamie jem
richard rich rick ricky dick richie
joseph joe joey jo giuseppe peppe jose
daniel dan danny
christopher chris kit krzysztof
christine christina chris chrissie tina kirsty kristina
alexander alex sandy alec alexandra alessandro aleksandra ola alejandro alexis
samuel sam sammy samantha
benjamin ben benji benny
matthew matt matty mateusz matteo
anthony tony ant antony antonio
edward ed eddie ted teddy ned
charles charlie chas chuck carlos
charlotte lottie charlie
rebecca becky becca
victoria vicky vicki tori
abigail abby abi gail
jessica jess jessie
deborah debbie deb debra
susan sue susie suzanne
patricia pat trish tricia patsy
patrick paddy pat
nicholas nick nicky nico
nicola nicky nikki
jonathan jon jonny
john jack johnny jon
timothy tim timmy
stephen steve steven stevie stefan
philip phil phillip pip
andrew andy drew andrzej andre
david dave davy
peter pete piotr pedro pierre
jacqueline jackie jacqui
amanda mandy
natalie nat natalia
gemma jemma
zoe
sean shaun shawn
mohammed muhammad mohamed mohammad mohamad muhammed mohamud mahamed mohd
ahmed ahmad ahmet
hussain hussein husain
hassan hasan
yusuf yousef youssef yusef
ibrahim ebrahim abraham
fatima fatma fatimah fatuma
aisha ayesha aysha aishah
maryam mariam miriam mary maria marie
amina aminah ameena
zainab zaynab zeinab
khadija khadijah khadidja
oluwaseun seun
olusegun segun
babatunde tunde
temitope tope temi
funmilayo funmi
adebayo bayo
chukwuemeka emeka
emmanuel manny manuel
magdalena magda
agnieszka aga
pawel paul paulo pablo
jakub kuba jacob jake
francesco frank francis franco
mei may
abdirahman abdi
abdullahi abdi abdullah
fadumo faduma
frederick fred freddie freddy
alfred alf alfie
henry harry hal
harold harry
theodore theo ted
archibald archie
oliver ollie olly
isabella isabel bella izzy isabelle
eleanor ellie nora elle
ellen ellie
florence flo florrie
georgina georgie gina
harriet hattie
josephine josie jo
joanna joanne jo
lucinda lucy
olivia liv livvy
penelope penny
phoebe
sophia sophie
gabriel gabe
nathaniel nathan nate
nathan nate
zachary zach zak
dominic dom
sebastian seb
toby tobias
barbara barbie babs
dorothy dot dotty
jacob jake
lawrence laurence larry laurie
leonard len lenny
raymond ray
ronald ron ronnie
donald don donnie
douglas doug
gerald gerry
kenneth ken kenny
terence terry
vincent vince
"""


def normalise_name(value: str) -> str:
    """Case-folded letters only, accents removed: "O'Brien" and "OBRIEN" agree, "Inês" is "ines"."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(ch for ch in decomposed if "a" <= ch <= "z")


@lru_cache(maxsize=1)
def nickname_lines() -> dict[str, tuple[int, ...]]:
    """Normalised name -> the numbers of the nickname lines it is on (names on no line are absent)."""
    out: dict[str, list[int]] = {}
    for number, line in enumerate(_NICKNAME_TEXT.strip().splitlines()):
        for name in {normalise_name(n) for n in line.split()}:
            out.setdefault(name, []).append(number)
    return {name: tuple(sorted(lines)) for name, lines in out.items()}


def nickname_equivalent(a: str, b: str) -> bool:
    """Do two normalised given names share a nickname line (Bill and William; not Henry and Harold)?"""
    lines = nickname_lines()
    return a == b or bool(set(lines.get(a, ())) & set(lines.get(b, ())))


_SOUNDEX_CODES: Final = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def soundex(normalised: str) -> str:
    """American Soundex of a normalised name (letters a-z only): a blocking key robust to most slips."""
    if not normalised:
        return ""
    out = [normalised[0]]
    last = _SOUNDEX_CODES.get(normalised[0], "")
    for ch in normalised[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "hw":  # h and w do not separate equal codes; vowels do
            last = code
    return "".join(out).ljust(4, "0")
