"""Builds the small tokenizer folders under src/test/resources/tokenizers and the token ids the Python
tokenizers (transformers 5, tokenizers 0.23, sentencepiece 0.2) give for every test string.

Run from java/diffusers: python3 src/test/python/make_tokenizer_fixtures.py
"""
import json, os, shutil, io
import sentencepiece as spm
from tokenizers import Tokenizer, Regex, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

# Qwen3's chat template reduced to what a one-message prompt renders (Z-Image renders exactly this)
CHATML = ("{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
          "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
          "{%- endif %}{%- endif %}")

OUT = "src/test/resources/tokenizers"
CORPUS = """A photo of a cat sitting on a red sofa, highly detailed, 4k.
An astronaut riding a horse on the moon; cinematic lighting!
Ein Hund läuft über die Straße. Café crème brûlée, naïve façade.
日本語のテキストと中文文本。 Emoji 🐱🚀 and symbols © ® ™ ½ ① ﬁ
sneaker, t-shirt, trouser, pullover, dress, coat, sandal, shirt, bag, ankle boot
The quick brown fox jumps over the lazy dog 1234567890 times. It's what they'd've said, isn't it?
""" * 20

TEXTS = [
    "a photo of a cat",
    "",
    " ",
    "   leading and trailing   ",
    "tabs\tand\nnewlines\r\nand  runs    of   spaces",
    "A Photo Of A CAT, IN CAPS!!!",
    "It's what they'd've said, isn't it?",
    "Café crème brûlée, naïve façade — ﬁne ½ ①",
    "e\u0301 (e + combining acute) vs \u00e9",
    "日本語のテキストと中文文本",
    "emoji 🐱🚀👩‍👩‍👧 and flags 🇯🇵",
    "<|startoftext|>special<|endoftext|> tokens in text </s> <pad> <unk>",
    "unknown chars: \u0000 \u200b \ufeff \u00ad zero width",
    "numbers 3.14159 and 1,000,000 and 2026-12-01",
    "x" * 300,
    " ".join(["sneaker"] * 120),
    "a very long prompt " * 60,
    "mixed\u3000ideographic\u00a0nbsp\u2003em space",
]

def spm_folder():
    d = os.path.join(OUT, "t5-spm")
    os.makedirs(d, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS.splitlines()), model_writer=model,
        vocab_size=220, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, hard_vocab_limit=False)
    with open(os.path.join(d, "spiece.model"), "wb") as f:
        f.write(model.getvalue())
    tok = T5Tokenizer(vocab_file=os.path.join(d, "spiece.model"), extra_ids=4)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "model_max_length": 64, "extra_ids": 4,
                   "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, f, indent=2)
    tok = T5Tokenizer.from_pretrained(d)
    # the same tokenizer saved by transformers: tokenizer.json beside the config, no spiece.model
    j = os.path.join(OUT, "t5-json")
    shutil.rmtree(j, ignore_errors=True)
    tok.save_pretrained(j)
    for extra in ("spiece.model",):
        if os.path.exists(os.path.join(j, extra)):
            os.remove(os.path.join(j, extra))
    return {"t5-spm": tok, "t5-json": T5Tokenizer.from_pretrained(j)}

def clip_folder():
    d = os.path.join(OUT, "clip")
    os.makedirs(d, exist_ok=True)
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix="", unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=600, end_of_word_suffix="</w>", special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    m = json.loads(tok.to_str())["model"]
    vocab = dict(m["vocab"])
    # CLIP's vocabulary holds each byte alone and with </w>, then merges, then the two specials last
    for ch in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(ch + "</w>", len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    merges = [" ".join(x) if isinstance(x, list) else x for x in m["merges"]]
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "do_lower_case": True}, f, indent=2)
    return {"clip": CLIPTokenizer.from_pretrained(d)}

QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

def qwen_folder():
    d = os.path.join(OUT, "qwen2")
    os.makedirs(d, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                               byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    m = json.loads(tok.to_str())["model"]
    vocab = dict(m["vocab"])
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    merges = [" ".join(x) if isinstance(x, list) else x for x in m["merges"]]
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    n = len(vocab)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 131072, "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "unk_token": None, "bos_token": None, "chat_template": CHATML,
                   "added_tokens_decoder": {str(n + i): {"content": t, "lstrip": False, "normalized": False,
                       "rstrip": False, "single_word": False, "special": True} for i, t in enumerate(specials)}},
                  f, indent=2)
    return {"qwen2": Qwen2Tokenizer.from_pretrained(d)}

def main():
    toks = {}
    toks.update(qwen_folder())
    toks.update(spm_folder())
    toks.update(clip_folder())
    cases = []
    for name, tok in toks.items():
        for text in TEXTS:
            for kw in ({"padding": "max_length", "max_length": tok.model_max_length, "truncation": True},
                       {"padding": "longest", "truncation": True, "max_length": 20},
                       {}):
                enc = tok(text, **kw)
                cases.append({"tokenizer": name, "text": text, "options": kw,
                              "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    qwen = toks["qwen2"]
    for text in TEXTS[:6]:
        rendered = qwen.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                            add_generation_prompt=True, enable_thinking=True)
        enc = qwen(rendered, padding="max_length", max_length=48, truncation=True)
        cases.append({"tokenizer": "qwen2", "text": text, "chat": True, "rendered": rendered,
                      "options": {"padding": "max_length", "max_length": 48, "truncation": True},
                      "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print(len(cases), "cases")

main()
