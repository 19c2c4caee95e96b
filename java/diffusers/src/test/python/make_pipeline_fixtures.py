"""Tiny FLUX.1 and SD3 pipeline folders (every component, random weights, the test tokenizers) saved by
diffusers 0.40.0.dev0 / transformers 5.17 / torch 2.13 under src/test/resources/pipelines/, each with the
images and latents the diffusers pipeline generates for fixed prompts and seeds (expected.safetensors),
plus VAE decode/encode references (tiled and untiled) in java/core/src/test/resources/vae/AutoencoderKL.

Run from java/diffusers after make_tokenizer_fixtures.py: python3 src/test/python/make_pipeline_fixtures.py
"""
import json, os, shutil, torch
from safetensors.torch import save_file
from diffusers import (UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel, AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel, AutoencoderKLWan, ZImagePipeline, ZImageTransformer2DModel, AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                       SD3Transformer2DModel, StableDiffusion3Pipeline)
from transformers import (UMT5Config, UMT5EncoderModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer, Qwen3Config, Qwen3Model, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, T5Config,
                          T5EncoderModel, T5Tokenizer)

OUT = "src/test/resources/pipelines"
TOK = "src/test/resources/tokenizers"
torch.manual_seed(0)

def vae(latent_channels):
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[16, 32], layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=8, sample_size=32, scaling_factor=0.3611,
                         shift_factor=0.1159).eval()

def clip(projection=False, hidden=32):
    cfg = CLIPTextConfig(vocab_size=746, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, projection_dim=hidden, eos_token_id=2,
                         bos_token_id=744, pad_token_id=745)
    return (CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)).eval()

def t5(d_model=32):
    return T5EncoderModel(T5Config(vocab_size=144, d_model=d_model, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                   feed_forward_proj="gated-gelu")).eval()

def expect(pipe, d, runs):
    exp = {}
    meta = []
    for i, kw in enumerate(runs):
        g = torch.Generator().manual_seed(kw.pop("seed"))
        with torch.no_grad():
            img = pipe(**kw, generator=g, output_type="np").images
            g = torch.Generator().manual_seed(meta_seed(kw))
        exp[f"image.{i}"] = torch.from_numpy(img).contiguous()
        meta.append(kw)
    save_file(exp, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)

def meta_seed(kw):
    return 0

def flux():
    d = os.path.join(OUT, "flux")
    shutil.rmtree(d, ignore_errors=True)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=[4, 6, 6]).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae(4), text_encoder=clip(), tokenizer=CLIPTokenizer.from_pretrained(
        os.path.join(TOK, "clip")), text_encoder_2=t5(), tokenizer_2=T5Tokenizer.from_pretrained(os.path.join(TOK, "t5-json")),
        transformer=transformer)
    pipe.save_pretrained(d)
    pipe = FluxPipeline.from_pretrained(d)
    expect(pipe, d, [
        dict(prompt="a photo of a cat", height=32, width=32, num_inference_steps=4, guidance_scale=3.5,
             max_sequence_length=32, seed=0),
        dict(prompt="An astronaut riding a horse 🐱", height=24, width=40, num_inference_steps=3, guidance_scale=2.0,
             max_sequence_length=16, num_images_per_prompt=2, seed=7),
        dict(prompt="a photo of a cat", negative_prompt="blurry", true_cfg_scale=4.0, height=32, width=32,
             num_inference_steps=3, guidance_scale=3.5, max_sequence_length=32, seed=3),
    ])

def sd3():
    d = os.path.join(OUT, "sd3")
    shutil.rmtree(d, ignore_errors=True)
    transformer = SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                                        pooled_projection_dim=32, out_channels=4, pos_embed_max_size=32).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    tok = CLIPTokenizer.from_pretrained(os.path.join(TOK, "clip"))
    pipe = StableDiffusion3Pipeline(scheduler=scheduler, vae=vae(4), text_encoder=clip(True, 16), tokenizer=tok,
        text_encoder_2=clip(True, 16), tokenizer_2=tok, text_encoder_3=t5(32),
        tokenizer_3=T5Tokenizer.from_pretrained(os.path.join(TOK, "t5-json")), transformer=transformer)
    pipe.save_pretrained(d)
    pipe = StableDiffusion3Pipeline.from_pretrained(d)
    expect(pipe, d, [
        dict(prompt="a photo of a cat", height=32, width=32, num_inference_steps=4, guidance_scale=5.0,
             max_sequence_length=32, seed=0),
        dict(prompt="a photo of a cat", negative_prompt="blurry, low quality", height=32, width=48, num_inference_steps=3,
             guidance_scale=3.0, max_sequence_length=16, seed=11),
        dict(prompt="no guidance here", height=32, width=32, num_inference_steps=2, guidance_scale=1.0,
             max_sequence_length=32, num_images_per_prompt=2, seed=5),
    ])

def vae_reference():
    d = "../core/src/test/resources/vae/AutoencoderKL"
    shutil.rmtree(d, ignore_errors=True)
    v = vae(4)
    v.config.sample_size  # 32: tiles of 32 pixels / 16 latents
    v.save_pretrained(d)
    z = torch.randn(1, 4, 24, 20)
    x = torch.rand(1, 3, 48, 40) * 2 - 1
    out = {}
    with torch.no_grad():
        out["decode.sample"] = v.decode(z).sample
        d0 = v.encode(x).latent_dist
        out["encode.mean"], out["encode.logvar"], out["encode.std"] = d0.mean, d0.logvar, d0.std
        v.enable_tiling()
        out["tiled_decode.sample"] = v.decode(z).sample
        d1 = v.encode(x).latent_dist
        out["tiled_encode.mean"], out["tiled_encode.logvar"], out["tiled_encode.std"] = d1.mean, d1.logvar, d1.std
    save_file({"z": z, "x": x}, os.path.join(d, "inputs.safetensors"))
    save_file({k: t.clone().contiguous() for k, t in out.items()}, os.path.join(d, "expected.safetensors"))

def zimage():
    d = os.path.join(OUT, "zimage")
    shutil.rmtree(d, ignore_errors=True)
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=32, n_layers=2,
                                           n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32,
                                           axes_dims=[8, 4, 4], axes_lens=[64, 32, 32]).eval()
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=503, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                          num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                          max_position_embeddings=128)).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    pipe = ZImagePipeline(scheduler=scheduler, vae=vae(4), text_encoder=text_encoder,
                          tokenizer=Qwen2Tokenizer.from_pretrained(os.path.join(TOK, "qwen2")), transformer=transformer)
    pipe.save_pretrained(d)
    pipe = ZImagePipeline.from_pretrained(d)
    expect(pipe, d, [
        dict(prompt="a photo of a cat", height=32, width=32, num_inference_steps=4, guidance_scale=0.0,
             max_sequence_length=64, seed=0),
        dict(prompt="a photo of a cat", negative_prompt="blurry", height=32, width=48, num_inference_steps=3,
             guidance_scale=4.0, max_sequence_length=64, num_images_per_prompt=2, seed=13),
        dict(prompt="An astronaut 🐱", height=32, width=32, num_inference_steps=3, guidance_scale=1.0,
             max_sequence_length=64, seed=21),
    ])

def wan_vae(attn_scales=()):
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=list(attn_scales),
                            temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.05],
                            latents_std=[1.5, 0.8, 2.0, 1.1]).eval()

def wan_vae_reference():
    # attn_scales stays empty: diffusers' encoder cannot run attention blocks in its down path (it passes them
    # the frame cache), and no released Wan VAE has any
    for name, attn in (("AutoencoderKLWan", ()),):
        d = os.path.join("../core/src/test/resources/vae", name)
        shutil.rmtree(d, ignore_errors=True)
        v = wan_vae(attn)
        v.save_pretrained(d)
        z = torch.randn(1, 4, 3, 4, 4)
        x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
        with torch.no_grad():
            out = {"decode.sample": v.decode(z).sample}
            dist = v.encode(x).latent_dist
            out["encode.mean"], out["encode.logvar"], out["encode.std"] = dist.mean, dist.logvar, dist.std
        save_file({"z": z, "x": x}, os.path.join(d, "inputs.safetensors"))
        save_file({k: t.clone().contiguous() for k, t in out.items()}, os.path.join(d, "expected.safetensors"))

def wan(name="wan", moe=False):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                        out_channels=4, text_dim=32, freq_dim=16, ffn_dim=24, num_layers=2,
                                        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                        rope_max_seq_len=32).eval()
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=144, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                               relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                               feed_forward_proj="gated-gelu")).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                        flow_shift=3.0)
    extra = {}
    if moe:  # Wan 2.2 A14B: a low-noise expert below the boundary
        extra = dict(transformer_2=WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2,
            attention_head_dim=12, in_channels=4, out_channels=4, text_dim=32, freq_dim=16, ffn_dim=24, num_layers=2,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=32).eval(),
            boundary_ratio=0.6)
    pipe = WanPipeline(tokenizer=T5Tokenizer.from_pretrained(os.path.join(TOK, "t5-json")), text_encoder=text_encoder,
                       transformer=transformer, vae=wan_vae(), scheduler=scheduler, **extra)
    pipe.save_pretrained(d)
    pipe = WanPipeline.from_pretrained(d)
    exp = {}
    runs = [dict(prompt="a cat walking on the grass", height=32, width=32, num_frames=5, num_inference_steps=4,
                 guidance_scale=5.0, max_sequence_length=32, seed=0),
            dict(prompt="An astronaut riding a horse", negative_prompt="blurry", height=32, width=48, num_frames=9,
                 num_inference_steps=3, guidance_scale=4.0, max_sequence_length=32, seed=9),
            dict(prompt="no guidance", height=32, width=32, num_frames=1, num_inference_steps=2, guidance_scale=1.0,
                 max_sequence_length=32, seed=4)]
    meta = []
    for i, kw in enumerate(runs):
        g = torch.Generator().manual_seed(kw.pop("seed"))
        with torch.no_grad():
            frames = pipe(**kw, generator=g, output_type="np").frames
        exp[f"image.{i}"] = torch.from_numpy(frames[0]).contiguous()
        meta.append(kw)
    save_file(exp, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)

def qwenimage():
    d = os.path.join(OUT, "qwenimage")
    shutil.rmtree(d, ignore_errors=True)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                              attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
                                              guidance_embeds=False, axes_dims_rope=(2, 2, 4)).eval()
    cfg = Qwen2_5_VLConfig(text_config=dict(vocab_size=503, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                            rope_theta=1000000.0,
                                            rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
                           vision_config=dict(depth=1, hidden_size=16, num_heads=2, intermediate_size=32,
                                              out_hidden_size=32, fullatt_block_indexes=[0]))
    text_encoder = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.05],
                                 latents_std=[1.5, 0.8, 2.0, 1.1]).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=0.9, base_image_seq_len=256,
                                                max_image_seq_len=8192, shift_terminal=0.02,
                                                time_shift_type="exponential")
    pipe = QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                             tokenizer=Qwen2Tokenizer.from_pretrained(os.path.join(TOK, "qwen2")), transformer=transformer)
    pipe.save_pretrained(d)
    pipe = QwenImagePipeline.from_pretrained(d)
    expect(pipe, d, [
        dict(prompt="a photo of a cat", height=32, width=32, num_inference_steps=4, true_cfg_scale=1.0, seed=0),
        dict(prompt="a photo of a cat", negative_prompt="blurry", height=32, width=48, num_inference_steps=3,
             true_cfg_scale=4.0, num_images_per_prompt=2, seed=17),
    ])

wan_vae_reference()
vae_reference()
flux()
sd3()
zimage()
qwenimage()
wan()
wan("wan22", moe=True)
for root, _, files in os.walk(OUT):
    for f in files:
        print(os.path.join(root, f), os.path.getsize(os.path.join(root, f)))
