"""project.naming: entry names keep acronyms whole and never repeat — a clash is told
apart by the module, the way a reader would name the two."""

from __future__ import annotations

import pytest

from torchvet.project.naming import class_entry_name, function_entry_name, unique_names


@pytest.mark.parametrize(("cls", "entry"), [
    ("ViT", "vit"), ("CaiT", "cait"), ("T2TViT", "t2t_vit"), ("SigLIP", "siglip"),
    ("XCiT", "xcit"), ("CvT", "cvt"), ("DeepViT", "deep_vit"), ("MaxViT", "max_vit"),
    ("LeViT", "le_vit"), ("SimMIM", "simmim"), ("MP3", "mp3"), ("NesT", "nest"),
    ("GPT2LMHead", "gpt2_lm_head"), ("PositionalEncoding", "positional_encoding"),
    ("TransformerModel", "transformer"), ("RNNModel", "rnn"), ("Net", "net"),
    ("HTTPServer", "http_server"),
])
def test_class_names_become_snake_case_with_acronyms_kept(cls: str, entry: str) -> None:
    assert class_entry_name(cls) == entry


def test_factory_functions_lose_their_verb() -> None:
    assert [function_entry_name(f) for f in ("make_net", "build_spec", "get_", "net")] == [
        "net", "spec", "get_", "net"]


def test_clashing_names_are_qualified_by_module_and_unique_ones_kept() -> None:
    names = unique_names([
        ("simple_vit", "lib.simple_vit"), ("simple_vit", "lib.simple_vit_3d"),
        ("simple_vit", "lib.simple_flash_attn_vit"), ("cait", "lib.cait"),
        ("transformer", "word_language_model.model"), ("transformer", "translation.model"),
        ("net", "mnist.main"), ("net", "mnist_rnn.main"),
    ])
    assert names == ["simple_vit", "simple_vit_3d", "simple_flash_attn_vit", "cait",
                     "wlm_transformer", "translation_transformer", "mnist_net",
                     "mnist_rnn_net"]


def test_names_stay_unique_when_the_module_cannot_tell_them_apart() -> None:
    names = unique_names([("net", "a.model"), ("net", "b.model"), ("net", "b.model")])
    assert len(set(names)) == 3
