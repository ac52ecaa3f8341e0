"""The real reader's surprisal: Gemma 3 270M (Q4_K_M GGUF, dequantized) against its own full
causal-LM forward pass (marked ``real_weights``; skipped when the package is absent)."""

from __future__ import annotations

import pytest
import torch

from scope_guard.reader import Reader
from scope_guard.reader.loading import quiet_transformers

pytestmark = pytest.mark.real_weights

PROMPT = "Answer using only the context below.\n\nContext:\n[1] The Eiffel Tower is in Paris."
RESPONSE = "It stands in Paris — near the Seine, 330 m tall, café «Zürich» 日本 😀."


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_real_surprisal_equals_the_full_forward_pass(real_gemma_folder, dtype):
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(real_gemma_folder, dtype=dtype).eval()
    reader = Reader(model, _tokenizer(real_gemma_folder), ["resid_post@9"], surprisal=True)
    assert reader.lm_head is not None
    assert reader.lm_head.softcap is None  # Gemma 3 270M sets no final soft-cap
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        logits = model(torch.tensor([enc.input_ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)[enc.response_start - 1 : -1]
    targets = torch.tensor(enc.input_ids[enc.response_start :])
    expected = -logp.gather(1, targets[:, None])[:, 0]
    entropy = -(logp.exp() * logp).sum(dim=-1)
    got = reader.read(PROMPT, RESPONSE).token_surprisal()
    # The logits are the model's own bits (measured in both dtypes on this CPU); what differs
    # is float32 rounding: sums over 262,144 terms in another order (measured: 2e-4 at most,
    # relative 5e-5). bf16 keeps a margin for kernels that block the response rows otherwise.
    atol = 1e-4 if dtype == torch.float32 else 1e-3
    torch.testing.assert_close(got.surprisal, expected, atol=atol, rtol=1e-4)
    torch.testing.assert_close(got.entropy, entropy, atol=atol, rtol=1e-4)
    assert float(expected.mean()) < 8.0  # a real model: far below log(262144) = 12.5 nats


def test_real_surprisal_reader_from_pretrained(real_gemma_folder):
    reader = Reader.from_pretrained(real_gemma_folder, ["resid_post@9"], surprisal=True)
    plain = Reader.from_pretrained(real_gemma_folder, ["resid_post@9"], dtype=reader.dtype)
    assert len(reader.layers) == 18
    assert reader.fingerprint_upto(9) == plain.fingerprint
    assert reader.fingerprint != plain.fingerprint
    a, b = reader.read(PROMPT, RESPONSE), plain.read(PROMPT, RESPONSE)
    assert torch.equal(a.activation("resid_post@9"), b.activation("resid_post@9"))
    assert a.token_surprisal().surprisal.shape == (a.n_tokens,)


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
