"""Tiny random text encoders saved by transformers 5.17 (torch 2.13, fp32), with inputs and the outputs
transformers computes for them, under src/test/resources/text-encoders/<class>/:
config.json + model.safetensors, inputs.safetensors (input_ids, attention_mask) and expected.safetensors
(last_hidden_state, pooler_output / text_embeds, hidden_states.<i>).

Run from java/core: python3 src/test/python/make_text_encoder_fixtures.py
"""
import os, torch
from safetensors.torch import save_file
from transformers import (Qwen3Config, Qwen3ForCausalLM, Qwen3Model, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel,
                          UMT5Config, UMT5EncoderModel)

OUT = "src/test/resources/text-encoders"
torch.manual_seed(0)

def save(name, model, ids, mask, use_mask):
    d = os.path.join(OUT, name)
    model.eval()
    model.save_pretrained(d)
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask if use_mask else None, output_hidden_states=True)
    exp = {}
    for k in ("last_hidden_state", "pooler_output", "text_embeds"):
        if k in o and o[k] is not None:
            exp[k] = o[k].clone().contiguous()
    for i, h in enumerate(o.hidden_states):
        exp[f"hidden_states.{i}"] = h.clone().contiguous()
    inputs = {"input_ids": ids}
    if use_mask:
        inputs["attention_mask"] = mask
    save_file(inputs, os.path.join(d, "inputs.safetensors"))
    save_file(exp, os.path.join(d, "expected.safetensors"))
    print(name, {k: tuple(v.shape) for k, v in exp.items()})

ids = torch.tensor([[5, 17, 9, 42, 99, 99], [7, 3, 99, 0, 0, 0]])
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
clip = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=16, projection_dim=24, bos_token_id=98, pad_token_id=99)
# eos_token_id 2: the legacy argmax pooling (FLUX's and SD3's CLIP configs); 99 pools at the first 99
save("CLIPTextModel", CLIPTextModel(CLIPTextConfig(**clip, eos_token_id=2)), ids, mask, False)
save("CLIPTextModel-eos", CLIPTextModel(CLIPTextConfig(**clip, eos_token_id=99, hidden_act="gelu")), ids, mask, True)
save("CLIPTextModelWithProjection", CLIPTextModelWithProjection(CLIPTextConfig(**clip, eos_token_id=2)), ids, mask, False)
t5 = dict(vocab_size=100, d_model=32, d_kv=8, d_ff=48, num_layers=3, num_heads=4, relative_attention_num_buckets=8,
          relative_attention_max_distance=20)
ids_long = torch.randint(0, 100, (2, 40)); ids_long[:, -1] = 1
mask_long = torch.ones(2, 40, dtype=torch.long); mask_long[1, 25:] = 0
save("T5EncoderModel", T5EncoderModel(T5Config(**t5, feed_forward_proj="gated-gelu")), ids_long, mask_long, False)
save("T5EncoderModel-relu", T5EncoderModel(T5Config(**t5, feed_forward_proj="relu")), ids_long, mask_long, True)
save("UMT5EncoderModel", UMT5EncoderModel(UMT5Config(**t5, feed_forward_proj="gated-gelu")), ids_long, mask_long, True)
qwen = dict(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=64, rope_theta=1000000.0)
save("Qwen3Model", Qwen3Model(Qwen3Config(**qwen)), ids_long, mask_long, True)
lm = Qwen3ForCausalLM(Qwen3Config(**qwen, tie_word_embeddings=False)).eval()
d = os.path.join(OUT, "Qwen3ForCausalLM")
lm.save_pretrained(d)
with torch.no_grad():
    o = lm.model(input_ids=ids_long, attention_mask=mask_long, output_hidden_states=True)
exp = {"last_hidden_state": o.last_hidden_state.clone().contiguous()}
for i, h in enumerate(o.hidden_states):
    exp[f"hidden_states.{i}"] = h.clone().contiguous()
save_file({"input_ids": ids_long, "attention_mask": mask_long}, os.path.join(d, "inputs.safetensors"))
save_file(exp, os.path.join(d, "expected.safetensors"))
print("Qwen3ForCausalLM", len(exp))
