"""A tiny Gemma 3 GGUF written with the ``gguf`` package's writer, in llama.cpp's layout.

The weights come from a seeded ``Gemma3ForCausalLM``; norms are stored as ``1 + w`` and the big
matrices quantized (Q8_0, Q4_0), as llama.cpp's converter does, so loading it exercises the
dequantization, the name mapping and the norm offset of a real file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

N_LAYERS = 4
HIDDEN = 64
HEADS = 4
KV_HEADS = 1
HEAD_DIM = 32
FFN = 128
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?!:'-"
_WORDS = ["the", "of", "in", "is", "it", "on", "at", "an", "or", "to", "he", "er", "re"]


def tiny_vocab() -> tuple[list[str], list[int]]:
    """Tokens and their llama.cpp types: control specials, 256 byte pieces, plain pieces."""
    tokens = list(SPECIALS)
    types = [3] * len(SPECIALS)  # CONTROL
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # BYTE
    pieces = ["\u2581", *_LETTERS, *(f"\u2581{c}" for c in _LETTERS[:26]), *_WORDS]
    pieces += [f"\u2581{w}" for w in _WORDS]
    tokens += pieces
    types += [1] * len(pieces)  # NORMAL
    return tokens, types


def _hf_to_gguf_name(name: str) -> str:
    table = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, rest = name.split(".", 3)
    return f"blk.{layer}.{table[rest.removesuffix('.weight')]}.weight"


def tiny_gemma3_model(seed: int = 0) -> torch.nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokens, _ = tiny_vocab()
    config = Gemma3TextConfig(
        vocab_size=len(tokens),
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.2)
            else:
                param.normal_(0.0, 0.15)
    return model


def write_tiny_gemma3_gguf(
    path: Path,
    *,
    seed: int = 0,
    architecture: str = "gemma3",
    chat_template: str | None = None,
    poison: str | None = None,
) -> Path:
    """Write the tiny model as a GGUF at ``path``; returns ``path``.

    Args:
        architecture: The architecture the header names (the tensors are Gemma 3's).
        chat_template: Stored as ``tokenizer.chat_template`` when given.
        poison: A GGUF tensor name whose first value is written as NaN.
    """
    import gguf

    model = tiny_gemma3_model(seed)
    tokens, types = tiny_vocab()
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny gemma3")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_context_length(2048)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_sliding_window(8)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for name, param in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding
            continue
        array = param.detach().float().numpy().copy()
        gname = _hf_to_gguf_name(name)
        if gname == poison:
            array.reshape(-1)[0] = np.nan
        if "norm" in name:
            writer.add_tensor(gname, (array + 1.0).astype(np.float32))
            continue
        qtype = gguf.GGMLQuantizationType.Q4_0 if "mlp" in name else gguf.GGMLQuantizationType.Q8_0
        packed = gguf.quants.quantize(array, qtype)
        writer.add_tensor(gname, packed, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
