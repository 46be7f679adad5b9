"""Entry names for ``torchvet init``: a class or function name in snake case with its
acronyms kept whole (``ViT`` -> ``vit``, ``CaiT`` -> ``cait``, ``T2TViT`` -> ``t2t_vit``,
``SigLIP`` -> ``siglip``, ``XCiT`` -> ``xcit``), and unique names for a whole proposal:
a name proposed twice is qualified by its module (``simple_vit_3d``,
``wlm_transformer``), never repeated."""

from __future__ import annotations

import re
from collections.abc import Sequence

# a titled word, an upper-case run not followed by a lower-case letter, digits, a
# lower-case start (nViT)
_TOKEN = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[0-9]+|[a-z]+")
MODEL_SUFFIXES = ("_model", "_net", "_network")  # dropped: every entry is a model
GENERIC_MODULES = {"model", "models", "main", "net", "nets", "network", "networks",
                   "modules", "module", "modeling", "arch", "architecture", "core"}
FACTORY_PREFIXES = ("make_", "build_", "create_", "get_", "new_")


def _is_short_word(token: str) -> bool:
    """``Vi``, ``Cai``, ``Sig``: the start of an acronym written in mixed case."""
    return 2 <= len(token) <= 3 and token[0].isupper() and token[1:].islower()


def words(name: str) -> list[str]:
    """The words of a CamelCase (or snake_case) name, acronyms kept whole."""
    out: list[str] = []
    for part in name.split("_"):
        if not any(c.isupper() for c in part):  # snake_case already: 3d stays 3d
            out.append(part)
            continue
        tokens = _TOKEN.findall(part)
        merged: list[str] = []
        for token in tokens:
            prev = merged[-1] if merged else ""
            if token.isupper() and prev and _is_short_word(prev):
                merged[-1] = prev + token  # Vi+T, Cai+T, Sig+LIP
            elif token.isdigit() and prev:
                merged[-1] = prev + token  # T2, GPT2, MP3
            elif (token.isupper() and len(token) == 1 and prev and prev[-1].isdigit()
                  and prev[:-1].rstrip("0123456789").isupper()):
                merged[-1] = prev + token  # T2+T
            else:
                merged.append(token)
        # a lone capital before a mixed-case acronym belongs to it: X+CiT, U+ViT
        joined: list[str] = []
        for token in merged:
            if (joined and len(joined[-1]) == 1 and joined[-1].isupper()
                    and not token.isupper() and token[-1].isupper()):
                joined[-1] += token
            else:
                joined.append(token)
        out += joined
    return [w.lower() for w in out if w]


def snake(name: str) -> str:
    """``name`` in snake case with acronyms kept (``DeepViT`` -> ``deep_vit``)."""
    return "_".join(words(name)) or name.lower()


def class_entry_name(name: str) -> str:
    """The entry name of a model class: snake case, a redundant ``Model`` suffix dropped
    (``TransformerModel`` -> ``transformer``, ``RNNModel`` -> ``rnn``)."""
    base = snake(name)
    for suffix in MODEL_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


def function_entry_name(function: str) -> str:
    """The entry name of a factory function: its name less a ``make_``-style prefix."""
    for prefix in FACTORY_PREFIXES:
        if function.startswith(prefix) and len(function) > len(prefix):
            return function[len(prefix):]
    return function


def _module_parts(module: str, depth: int) -> list[list[str]]:
    parts = [p for p in module.split(".") if p and p != "__init__"]
    meaningful = [p for p in parts if p.lower() not in GENERIC_MODULES] or parts
    return [words(part) for part in meaningful[-depth:]]


def qualifier(module: str, depth: int = 1) -> str:
    """What tells apart two entries of the same name: the module's last meaningful
    part(s), a generic ``model``/``main`` skipped, three or more words shortened to
    their initials (``word_language_model`` -> ``wlm``)."""
    return "_".join("".join(w[0] for w in ws) if len(ws) >= 3 else "_".join(ws)
                    for ws in _module_parts(module, depth))


def qualified(name: str, module: str, depth: int = 1) -> str:
    """``name`` told apart by its module: the module part alone when it already says
    the name (``simple_vit_3d`` for ``SimpleViT``), else prefixed (``wlm_transformer``)."""
    parts = _module_parts(module, depth)
    if depth == 1 and parts:
        it = iter(parts[-1])
        whole = "_".join(parts[-1])
        if (all(w in it for w in name.split("_"))  # the name's words, in order
                or name.replace("_", "") in whole.replace("_", "")):  # vitnd in vit_nd
            return whole
    q = qualifier(module, depth)
    return f"{q}_{name}" if q else name


def unique_names(entries: Sequence[tuple[str, str]]) -> list[str]:
    """One unique name per ``(name, module)``, in order: names proposed once are kept;
    a clash is qualified by the module, more of it while clashes remain, then numbered."""
    names = [name for name, _ in entries]
    for depth in (1, 2, 3):
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        clashing = {n for n, c in counts.items() if c > 1}
        if not clashing:
            return names
        names = [qualified(base, module, depth) if n in clashing else n
                 for n, (base, module) in zip(names, entries, strict=True)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def pascal(name: str) -> str:
    """``simple_vit_3d`` -> ``SimpleVit3d``: an import alias from an entry name."""
    return "".join(w[:1].upper() + w[1:] for w in name.split("_") if w)
