"""Write resources/common_passwords.txt: passwords of 10 or more characters that people pick most often, built
from common knowledge of how they are made (no list is downloaded): frequent words and first names with the
usual suffixes (digits, years, "!"), their obvious letter-for-digit swaps, keyboard walks and number patterns.

Run: python scripts/make_common_passwords.py   (the output is deterministic; the check is case-insensitive,
so every entry is lower case)
"""

from __future__ import annotations

import itertools
from pathlib import Path

MIN_LENGTH = 10
LIMIT = 8000

WORDS = """password passw0rd letmein welcome iloveyou admin administrator root master qwerty dragon monkey
football baseball basketball soccer hockey sunshine princess shadow superman batman spiderman starwars
pokemon minecraft trustno1 whatever freedom access secret mustang michael jordan harley ranger buster
thomas tigger charlie robert soccer killer hunter hello computer internet google facebook samsung apple
cheese cookie chocolate butterfly flower summer winter autumn spring orange banana purple yellow silver
golden diamond phoenix dolphin tiger lion eagle falcon cowboy rockstar guitar music lovely angel baby
jesus christ heaven blessed family forever friends friend love lover sweet sweetie honey pepper ginger
maggie bailey buddy daisy molly sophie chelsea arsenal liverpool united madrid barcelona juventus
yankees lakers cowboys steelers packers chicago london paris berlin america canada mexico brazil
australia india china japan russia england scotland ireland florida texas california newyork
changeme default test testing tester guest user login service support office manager system server
network database backup oracle mysql postgres docker kubernetes linux ubuntu windows microsoft
company business money dollar million success winner champion legend player gamer hacker ninja
matrix zombie monster vampire wizard dragons knight warrior soldier captain pirate sailor rocket
galaxy planet universe cosmic thunder lightning storm ocean river mountain forest garden nature
coffee pizza burger chicken turkey hotdog cupcake muffin candy sugar cherry peach mango lemon
kitty kitten puppy doggie bunny bear panda koala penguin horse unicorn rainbow sparkle glitter
secure private welcome1 letmein1 passport sunflower jennifer jessica ashley amanda michelle
nicole samantha elizabeth stephanie melissa sarah hannah emily madison olivia emma isabella
daniel matthew joshua andrew david james john william richard joseph christopher anthony
benjamin alexander nicholas jonathan brandon justin tyler austin kevin brian steven jason
patrick edward charles george peter paul mark scott eric ryan adam aaron kyle nathan zachary
maria anna laura julia lucas gabriel mohammed ahmed alex sam max jack harry oliver noah liam
qazwsx asdf zxcv abcd abc xyz qwe asd zxc poiuy lkjhg mnbvc""".split()

KEYBOARD_WALKS = """qwertyuiop qwertyuiop123 asdfghjkl asdfghjkl123 zxcvbnm123 zxcvbnmasdf 1qaz2wsx3edc 1qaz2wsx3edc4rfv
qazwsxedcrfv qazwsxedc123 zaq12wsxcde3 1q2w3e4r5t 1q2w3e4r5t6y 1q2w3e4r5t6y7u 1qazxsw23edc q1w2e3r4t5
q1w2e3r4t5y6 qwer1234asdf qwerty1234 qwerty12345 qwerty123456 qwertyqwerty asdfasdfasdf asdf1234asdf
zxcvzxcvzxcv poiuytrewq lkjhgfdsaq mnbvcxzlkj !qaz@wsx#edc 1234qwerasdf 12qwaszx12qwaszx
qweasdzxc123 qweasdzxcv asdfghjklzxc qwertyasdfgh 123qweasdzxc abc123abc123 abcdefghij abcdefghijk
abcdefg123 abcd1234abcd 123abc123abc a1b2c3d4e5 a1b2c3d4e5f6 1a2b3c4d5e""".split()


def number_patterns() -> list[str]:
    patterns = ["1234567890", "0987654321", "0123456789", "9876543210", "12345678910", "123456789a",
                "1122334455", "1111122222", "1212121212", "1231231231", "123123123123", "1234512345",
                "12341234", "123456123456", "147258369", "1472583690", "159753159753", "9638527410",
                "7894561230", "1357924680", "2468013579", "0000011111", "5555566666", "1010101010",
                "2020202020", "6969696969", "4204204204", "1234567891", "1234567899", "1234554321",
                "11223344556", "0102030405", "1020304050", "3141592653", "2718281828", "8675309867"]
    patterns += [f"{d}" * 2 + "".join(str((d + k) % 10) for k in range(1, 9)) for d in range(10)]
    return patterns


def leet(word: str) -> set[str]:
    swaps = {"a": "@4", "o": "0", "e": "3", "i": "1!", "s": "$5", "t": "7", "l": "1"}
    variants = {word}
    for letter, replacements in swaps.items():
        for variant in list(variants):
            for replacement in replacements:
                variants.add(variant.replace(letter, replacement))
    return variants


def suffixes() -> list[str]:
    digits = ["1", "12", "123", "1234", "12345", "123456", "1234567", "01", "007", "69", "99", "00", "11", "13",
              "22", "23", "77", "88", "321", "111", "000", "666", "777"]
    years = [str(year) for year in range(1960, 2031)] + [f"{year % 100:02d}" for year in range(1960, 2031)]
    marks = ["!", "!!", "?", "@", "#", "1!", "123!", "!1", "!123", "@123", "#1", "*", "."]
    return digits + years + marks + [year + "!" for year in years[:71]]


def candidates() -> list[str]:
    """Most likely first: patterns, then the commonest suffixes across all words, then swaps and phrases."""
    ordered: list[str] = []
    ordered += KEYBOARD_WALKS + number_patterns()
    ordered += ["password", "password1", "password123", "12345678901", "letmein123", "welcome123", "iloveyou12",
                "passw0rd123", "changeme123", "admin12345"]
    common = ["123", "1234", "12345", "123456", "1", "!", "12", "2024", "2025", "2023", "01", "1!", "123!", "007",
              "69", "2020", "2022", "2021", "1234567", "99", "00", "11", "@123"]
    for suffix in common:
        ordered += [word + suffix for word in WORDS]
    for word in WORDS[:60]:
        for variant in sorted(leet(word)):
            for suffix in ("", "1", "123", "1234", "12345", "!", "123!", "2024"):
                ordered.append(variant + suffix)
    ordered += [word + word for word in WORDS]
    for first, word in itertools.product(("ilove", "iloveyou", "my", "the", "super"), WORDS[:150]):
        ordered.append(first + word)
    for word in WORDS[:150]:
        ordered += [word + suffix for suffix in suffixes()]
    return ordered


def main() -> int:
    seen: set[str] = set()
    kept: list[str] = []
    for password in candidates():
        password = password.lower()
        if password not in seen and (len(password) >= MIN_LENGTH or password.startswith("password")):
            seen.add(password)
            kept.append(password)
        if len(kept) >= LIMIT:
            break
    out = Path(__file__).resolve().parent.parent / "resources" / "common_passwords.txt"
    out.write_text("# Common passwords of 10+ characters (lower case); made by scripts/make_common_passwords.py\n"
                   + "\n".join(kept) + "\n", encoding="utf-8")
    print(f"wrote {len(kept)} passwords to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
