"""Redis's glob patterns (KEYS, SCAN MATCH, CONFIG GET, PUBSUB...), compiled to
Python regular expressions with the same meaning as Redis's stringmatchlen:
* ? [set] [^set] [a-z] (reversed ranges allowed), backslash escapes, and an
unclosed [ that runs to the end of the pattern."""

import re
from functools import lru_cache


def _translate(pattern: bytes, nocase: bool) -> bytes:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif ch == 0x3F:  # ?
            out.append(b".")
        elif ch == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            ranges = []
            while i < n:
                c = pattern[i]
                if c == 0x5C and i + 1 < n:  # \x inside a set
                    i += 1
                    ranges.append((pattern[i], pattern[i]))
                elif c == 0x5D:  # ]
                    break
                elif i + 2 < n and pattern[i + 1] == 0x2D:  # a-z
                    lo, hi = c, pattern[i + 2]
                    if lo > hi:
                        lo, hi = hi, lo
                    ranges.append((lo, hi))
                    i += 2
                else:
                    ranges.append((c, c))
                i += 1
            if nocase:
                extra = []
                for lo, hi in ranges:
                    for x in range(lo, hi + 1):
                        if 0x41 <= x <= 0x5A or 0x61 <= x <= 0x7A:
                            extra.append((x ^ 0x20, x ^ 0x20))
                ranges += extra
            body = b"".join(b"\\x%02x-\\x%02x" % r for r in ranges)
            if not ranges:
                out.append(b"[\\x00-\\xff]" if negate else b"(?!)")
            else:
                out.append(b"[" + (b"^" if negate else b"") + body + b"]")
        elif ch == 0x5C and i + 1 < n:  # \x
            i += 1
            out.append(re.escape(pattern[i:i + 1]))
        else:
            out.append(re.escape(pattern[i:i + 1]))
        i += 1
    return b"".join(out)


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes, nocase: bool = False):
    flags = re.DOTALL | (re.IGNORECASE if nocase else 0)
    return re.compile(_translate(pattern, nocase), flags)


def glob_match(pattern: bytes, subject: bytes, nocase: bool = False) -> bool:
    if pattern == b"*":
        return True
    return compile_glob(pattern, nocase).fullmatch(subject) is not None
