"""A stand-in for kohya sd-scripts' sdxl_train_network.py, for tests. No GPU, no torch.

Takes the flags the runner passes (argparse rejects unknown ones, as the real script does), reads the
dataset TOML, counts steps the way kohya does (buckets by nearest aspect ratio, ceil per bucket, ceil
by gradient accumulation, × epochs), and prints what kohya prints with --console_log_simple: plain
lines on stdout, the tqdm bar on stderr separated by \\r. Saves `{name}-{e:06d}.safetensors` every N
epochs below E plus `{name}.safetensors`, with ss_* metadata, and `{name}-{e:06d}-state/` folders
with train_state.json when --save_state. --resume DIR continues from that state.
Samples (--sample_prompts with --sample_every_n_epochs / --sample_every_n_steps / --sample_at_first):
the prompt file is parsed like train_util.line_to_prompt_dict, the log lines are kohya's, and PNGs go to
`{out}/sample/{name}_{e000002|000180}_{NN}_{YYYYmmddHHMMSS}[_{seed}].png`, after the epoch's save.
Failure modes: see ../fake_trainer_common.py.
"""
import argparse
import json
import math
import os
import re
import struct
import sys
import time
import tomllib
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fake_trainer_common import Bar, die_killed, load_settings, stall_forever, traceback_tail, write_png, write_safetensors  # noqa: E402

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 1024, 1024
    return struct.unpack(">II", head[16:24])


def make_bucket_resolutions(max_reso, min_size, max_size, divisible):
    max_width, max_height = max_reso
    max_area = max_width * max_height
    resos = set()
    width = int(math.sqrt(max_area) // divisible) * divisible
    resos.add((width, width))
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible
    return sorted(resos)


def read_sample_prompts(path):
    """train_util.line_to_prompt_dict: one prompt a line, '#' and blank lines skipped, options after ' --'."""
    prompts = []
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    for line in lines:
        if not line or line.startswith("#"):
            continue
        parts = line.split(" --")
        d = {"prompt": parts[0].strip(), "negative_prompt": None, "width": 512, "height": 512,
             "sample_steps": 30, "scale": 7.5, "seed": None, "enum": len(prompts)}
        for part in parts[1:]:
            m = re.match(r"^(\w+) (.*)$", part.strip(), re.DOTALL)
            if not m:
                continue
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "n":
                d["negative_prompt"] = value
            elif key == "w":
                d["width"] = max(64, int(value) // 8 * 8)
            elif key == "h":
                d["height"] = max(64, int(value) // 8 * 8)
            elif key == "s":
                d["sample_steps"] = min(1000, max(1, int(value)))
            elif key == "l":
                d["scale"] = float(value)
            elif key == "d":
                d["seed"] = int(value)
        prompts.append(d)
    return prompts


def sample_images(args, name, epoch, steps):
    """What train_util.sample_images prints and writes (the image is one flat colour per prompt)."""
    print(f"\ngenerating sample images at step / サンプル画像生成 ステップ: {steps}", flush=True)
    save_dir = os.path.join(args.output_dir, "sample")
    os.makedirs(save_dir, exist_ok=True)
    for d in read_sample_prompts(args.sample_prompts):
        print(f"prompt: {d['prompt']}", flush=True)
        print(f"negative_prompt: {d['negative_prompt']}", flush=True)
        print(f"height: {d['height']}", flush=True)
        print(f"width: {d['width']}", flush=True)
        print(f"sample_steps: {d['sample_steps']}", flush=True)
        print(f"scale: {d['scale']}", flush=True)
        print(f"sample_sampler: {args.sample_sampler}", flush=True)
        if d["seed"] is not None:
            print(f"seed: {d['seed']}", flush=True)
        ts_str = time.strftime("%Y%m%d%H%M%S", time.localtime())
        num_suffix = f"e{epoch:06d}" if epoch is not None else f"{steps:06d}"
        seed_suffix = "" if d["seed"] is None else f"_{d['seed']}"
        filename = f"{name}_{num_suffix}_{d['enum']:02d}_{ts_str}{seed_suffix}.png"
        write_png(os.path.join(save_dir, filename), d["width"], d["height"], ((60 + 80 * d["enum"]) % 256, 120, (steps * 7) % 256))


def should_sample(args, epoch, steps):
    """train_util.sample_images_common's gate: epoch sampling wins over step sampling."""
    if not args.sample_prompts:
        return False
    if steps == 0:
        return bool(args.sample_at_first)
    if args.sample_every_n_epochs is None and args.sample_every_n_steps is None:
        return False
    if args.sample_every_n_epochs is not None:
        return epoch is not None and epoch % args.sample_every_n_epochs == 0
    return epoch is None and steps % args.sample_every_n_steps == 0


def parse_args():
    p = argparse.ArgumentParser()
    for flag in ["pretrained_model_name_or_path", "dataset_config", "output_dir", "output_name", "save_model_as",
                 "network_module", "optimizer_type", "lr_scheduler", "mixed_precision", "save_precision", "loss_type",
                 "huber_schedule", "resume", "sample_prompts"]:
        p.add_argument(f"--{flag}")
    for flag in ["network_dim", "network_alpha", "max_train_epochs", "gradient_accumulation_steps", "save_every_n_epochs",
                 "seed", "lr_warmup_steps", "sample_every_n_epochs", "sample_every_n_steps"]:
        p.add_argument(f"--{flag}", type=int)
    for flag in ["learning_rate", "unet_lr", "text_encoder_lr"]:
        p.add_argument(f"--{flag}", type=float)
    p.add_argument("--network_args", nargs="*")
    p.add_argument("--sample_sampler", default="ddim", choices=["ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a"])
    for flag in ["save_state", "cache_latents", "cache_latents_to_disk", "gradient_checkpointing", "sdpa",
                 "console_log_simple", "v_parameterization", "zero_terminal_snr", "sample_at_first"]:
        p.add_argument(f"--{flag}", action="store_true")
    return p.parse_args()


def main():
    args = parse_args()
    name = args.output_name or "last"
    out = args.output_dir
    print(f"Loading dataset config from {args.dataset_config}", flush=True)
    with open(args.dataset_config, "rb") as f:
        cfg = tomllib.load(f)
    dataset = cfg["datasets"][0]
    subsets = dataset.get("subsets", [])
    dataset_root = os.path.dirname(subsets[0]["image_dir"]) if subsets else None
    settings = load_settings(dataset_root)
    fail, fail_at = settings.get("fail"), int(settings.get("failAtStep", 3))
    step_s = float(settings.get("stepMs", 5)) / 1000

    print("prepare images.", flush=True)
    images = []  # (width, height, repeats)
    missing = 0
    for subset in subsets:
        image_dir = subset["image_dir"]
        ext = subset.get("caption_extension", cfg.get("general", {}).get("caption_extension", ".caption"))
        files = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_EXTENSIONS)) if os.path.isdir(image_dir) else []
        print(f"found directory {image_dir} contains {len(files)} image files", flush=True)
        for n in files:
            if not os.path.exists(os.path.join(image_dir, os.path.splitext(n)[0] + ext)):
                missing += 1
            w, h = png_size(os.path.join(image_dir, n))
            images.append((w, h, int(subset.get("num_repeats", 1))))
    if missing:
        print(f"No caption file found for {missing} images. Training will continue without captions. / {missing}枚の画像にキャプションファイルが見つかりませんでした。", flush=True)
    print(f"{sum(r for _, _, r in images)} train images with repeats.", flush=True)
    print("0 reg images with repeats.", flush=True)
    if not images or fail == "no_data":
        print("No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / 画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、画像があるフォルダの親フォルダを指定する必要があります）", flush=True)
        sys.exit(0)

    print("make buckets", flush=True)
    reso = dataset.get("resolution", 1024)
    resos = make_bucket_resolutions((reso, reso), dataset.get("min_bucket_reso", 256), dataset.get("max_bucket_reso", 1024), dataset.get("bucket_reso_steps", 64))
    ars = [w / h for w, h in resos]
    buckets = {}
    for w, h, r in images:
        ar = w / h
        i = min(range(len(ars)), key=lambda j: (abs(ars[j] - ar), j))
        buckets[resos[i]] = buckets.get(resos[i], 0) + r
    for i, (bw, bh) in enumerate(sorted(buckets)):
        print(f"bucket {i}: resolution ({bw}, {bh}), count: {buckets[(bw, bh)]}", flush=True)
    batch = dataset.get("batch_size", 1)
    batches = sum(math.ceil(n / batch) for n in buckets.values())
    accum = args.gradient_accumulation_steps or 1
    steps_per_epoch = math.ceil(batches / accum)
    epochs = args.max_train_epochs or 1
    total = steps_per_epoch * epochs
    print("caching latents...", flush=True)
    print(f"import network module: {args.network_module}", flush=True)
    print("use 8-bit AdamW optimizer | {}", flush=True)
    print(f"override steps. steps for {epochs} epochs is / 指定エポックまでのステップ数: {total}", flush=True)

    initial_step, first_epoch = 0, 0
    if args.resume:
        with open(os.path.join(args.resume, "train_state.json"), encoding="utf-8") as f:
            state = json.load(f)
        initial_step, first_epoch = state["current_step"], state["current_epoch"]
        print(f"resume training from local state: {args.resume}", flush=True)
        print(f"initial_step: {initial_step}, first_epoch: {first_epoch}", flush=True)

    print("running training / 学習開始", flush=True)
    print(f"  num train images * repeats / 学習画像の数×繰り返し回数: {sum(r for _, _, r in images)}", flush=True)
    print(f"  num batches per epoch / 1epochのバッチ数: {batches}", flush=True)
    print(f"  num epochs / epoch数: {epochs}", flush=True)
    print(f"  gradient accumulation steps / 勾配を合計するステップ数 = {accum}", flush=True)
    print(f"  total optimization steps / 学習ステップ数: {total}", flush=True)

    session = str(uuid.uuid4())
    started = str(int(time.time()))

    def metadata(epoch, step):
        return {
            "ss_session_id": session, "ss_training_started_at": started, "ss_output_name": name,
            "ss_epoch": str(epoch), "ss_steps": str(step), "ss_num_epochs": str(epochs),
            "ss_max_train_steps": str(total), "ss_num_train_images": str(sum(r for _, _, r in images)),
            "ss_num_batches_per_epoch": str(batches), "ss_seed": str(args.seed), "ss_learning_rate": str(args.learning_rate),
            "ss_unet_lr": str(args.unet_lr), "ss_text_encoder_lr": str(args.text_encoder_lr),
            "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit", "ss_lr_scheduler": args.lr_scheduler,
            "ss_mixed_precision": args.mixed_precision, "ss_loss_type": args.loss_type,
            "ss_network_module": args.network_module, "ss_network_dim": str(args.network_dim),
            "ss_network_alpha": str(args.network_alpha),
            "ss_network_args": json.dumps(dict(a.split("=", 1) for a in (args.network_args or []))),
            "ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": os.path.basename(args.pretrained_model_name_or_path or ""),
            "ss_v2": "False", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
            "ss_training_finished_at": str(int(time.time())),
        }

    bar = Bar("steps", total - initial_step)
    step = initial_step
    if initial_step == 0 and should_sample(args, None, 0):
        sample_images(args, name, 0, 0)
    losses = []
    for epoch in range(first_epoch, epochs):
        print(f"\nepoch {epoch + 1}/{epochs}\n", flush=True)
        losses = []
        for _ in range(steps_per_epoch):
            if step >= total:
                break
            time.sleep(step_s)
            step += 1
            if fail == "stall" and step >= fail_at:
                stall_forever()
            if fail == "killed" and step >= fail_at:
                die_killed()
            if fail == "oom" and step >= fail_at:
                bar.close()
                traceback_tail("sdxl_train_network.py", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 50.00 MiB. GPU 0 has a total capacity of 23.69 GiB of which 12.31 MiB is free.")
                sys.exit(1)
            if fail == "crash" and step >= fail_at:
                bar.close()
                traceback_tail("sdxl_train_network.py", "RuntimeError: something broke in the fake trainer")
                sys.exit(1)
            loss = float("nan") if fail == "nan" and step >= fail_at else 0.12 - 0.00001 * step
            losses.append(loss)
            avr = sum(losses) / len(losses)
            bar.update(f"avr_loss={'nan' if math.isnan(avr) else format(avr, '.3g')}")
            if should_sample(args, None, step):
                sample_images(args, name, None, step)
        e = epoch + 1
        if args.save_every_n_epochs and e % args.save_every_n_epochs == 0 and e < epochs:
            path = os.path.join(out, f"{name}-{e:06d}.safetensors")
            print(f"\nsaving checkpoint: {path}", flush=True)
            write_safetensors(path, metadata(e, step))
            if args.save_state:
                print(f"saving state at epoch {e}", flush=True)
                state_dir = os.path.join(out, f"{name}-{e:06d}-state")
                os.makedirs(state_dir, exist_ok=True)
                with open(os.path.join(state_dir, "train_state.json"), "w", encoding="utf-8") as f:
                    json.dump({"current_epoch": e, "current_step": step}, f)
        # Sampling comes after the epoch's save, the final epoch included.
        if should_sample(args, e, step):
            sample_images(args, name, e, step)
    bar.close()
    path = os.path.join(out, f"{name}.safetensors")
    print(f"\nsaving checkpoint: {path}", flush=True)
    write_safetensors(path, metadata(epochs, step))
    print("model saved.", flush=True)


if __name__ == "__main__":
    main()
