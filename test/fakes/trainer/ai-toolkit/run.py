"""A stand-in for ostris ai-toolkit's run.py (FLUX.1-dev LoRA), for tests. No GPU, no torch.

`python run.py config.yaml`: prints the job banner, the dataset lines, the tqdm bar on stderr
(`name:  12%|█▏        | 240/2000 [..., lr: 1.0e-04 loss: 4.123e-01]`), `Saving at step N` /
`Saved checkpoint to …/{name}_{step:09d}.safetensors` every save_every steps and `{name}.safetensors`
at the end, with training_info metadata. An existing `{name}*.safetensors` in the training folder
makes it resume (`#### IMPORTANT RESUMING FROM … ####`). Failure modes: ../fake_trainer_common.py.
Samples (the `sample:` section): at step 0 unless train.skip_first_sample, at every sample_every steps
(before that step's save) and at the end, one JPEG per prompt as
`{folder}/samples/{unix_ms}__{step:09d}_{i}.jpg`, with the "Generating Images" bar on stderr.
"""
import glob
import json
import math
import os
import re
import sys
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fake_trainer_common import Bar, die_killed, load_settings, stall_forever, traceback_tail, write_jpeg, write_safetensors  # noqa: E402


def sample(folder, sample_cfg, step):
    """BaseSDTrainProcess.sample: `[time]_{_step:09d}_[count].{ext}` in `samples/`, seeds fixed unless walk_seed."""
    if not sample_cfg or not sample_cfg.get("prompts"):
        return
    prompts = sample_cfg["prompts"]
    samples_dir = os.path.join(folder, "samples")
    os.makedirs(samples_dir, exist_ok=True)
    width, height = int(sample_cfg.get("width", 512)), int(sample_cfg.get("height", 512))
    ext = sample_cfg.get("ext", "jpg")
    for i in range(len(prompts)):
        name = f"{int(time.time() * 1000)}__{str(step).zfill(9)}_{i}.{ext}"
        write_jpeg(os.path.join(samples_dir, name), width, height)
        bar = f"Generating Images: {int((i + 1) * 100 / len(prompts)):3d}%|{'█' * ((i + 1) * 10 // len(prompts)):<10}| {i + 1}/{len(prompts)} [00:01<00:00,  1.00s/it]"
        sys.stderr.write("\r" + bar)
        sys.stderr.flush()
    sys.stderr.write("\r" + " " * 70 + "\r")
    sys.stderr.flush()


def result_block_and_exit(message):
    print(f"Error running job: {message}", flush=True)
    print("", flush=True)
    print("========================================", flush=True)
    print("Result:", flush=True)
    print(" - 0 completed jobs", flush=True)
    print(" - 1 failure", flush=True)
    print("========================================", flush=True)
    traceback_tail("run.py", f"Exception: {message}")
    sys.exit(1)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    name = cfg["config"]["name"]
    proc = cfg["config"]["process"][0]
    folder = os.path.join(proc["training_folder"], name)
    datasets = proc.get("datasets", [])
    dataset_root = os.path.dirname(datasets[0]["folder_path"]) if datasets else None
    settings = load_settings(dataset_root)
    fail, fail_at = settings.get("fail"), int(settings.get("failAtStep", 3))
    step_s = float(settings.get("stepMs", 5)) / 1000

    print("Running 1 job", flush=True)
    print("#" * 45, flush=True)
    print(f"# Running job: {name}", flush=True)
    print("#" * 45, flush=True)
    print("", flush=True)
    print("Running  1 process", flush=True)
    if fail == "gated":
        url = f"https://huggingface.co/{proc['model']['name_or_path']}/resolve/main/config.json"
        print(f"Cannot access gated repo for url {url}.", file=sys.stderr, flush=True)
        result_block_and_exit(f"401 Client Error. (Request ID: Root=1-fake)\n\nCannot access gated repo for url {url}.".replace("\n", " "))

    count = 0
    for d in datasets:
        print(f"Dataset: {d['folder_path']}", flush=True)
        files = [n for n in os.listdir(d["folder_path"]) if n.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
        print(f"  -  Found {len(files)} images", flush=True)
        count += len(files)
    if count == 0 or fail == "no_data":
        result_block_and_exit("No images found in dataset")

    train = proc["train"]
    total, save_every = int(train["steps"]), int(proc["save"]["save_every"])
    os.makedirs(folder, exist_ok=True)
    start = 0
    existing = sorted(glob.glob(os.path.join(folder, f"{name}_*.safetensors")))
    if existing:
        latest = existing[-1]
        start = int(re.search(r"_(\d{9})\.safetensors$", latest).group(1))
        print(f"#### IMPORTANT RESUMING FROM {latest} ####", flush=True)

    def save(path, step):
        write_safetensors(path, {
            "training_info": json.dumps({"step": step, "epoch": step // max(1, count)}),
            "ss_base_model_version": "flux1", "ss_output_name": name, "software": json.dumps({"name": "ai-toolkit"}),
            "format": "pt", "name": name,
        })

    sample_cfg = proc.get("sample") or {}
    sample_every = int(sample_cfg.get("sample_every", 0) or 0)
    if start == 0 and not train.get("skip_first_sample", False) and not train.get("disable_sampling", False):
        print("Generating baseline samples before training", flush=True)
        sample(folder, sample_cfg, 0)

    bar = Bar(name, total, initial=start)
    nan_streak = 0
    for k in range(start, total):
        time.sleep(step_s)
        step = k + 1
        if fail == "stall" and step >= fail_at:
            stall_forever()
        if fail == "killed" and step >= fail_at:
            die_killed()
        if fail == "oom" and step >= fail_at:
            for i in range(1, 4):
                print(f"# OOM during training step, skipping batch {i}/3 #", flush=True)
            bar.close()
            result_block_and_exit("OOM during training step 3 times in a row, aborting training")
        if fail == "crash" and step >= fail_at:
            bar.close()
            result_block_and_exit("something broke in the fake trainer")
        loss = 0.4 - 0.0001 * step
        if fail == "nan" and step >= fail_at:
            print("loss is nan", flush=True)
            loss = 0.0
            nan_streak += 1
        bar.update(f"lr: {float(train['lr']):.1e} loss: {loss:.3e}")
        if sample_every and step % sample_every == 0 and step < total and not train.get("disable_sampling", False):
            sample(folder, sample_cfg, step)
        if step % save_every == 0 and step < total:
            path = os.path.join(folder, f"{name}_{step:09d}.safetensors")
            print(f"\nSaving at step {step}", flush=True)
            save(path, step)
            print(f"Saved checkpoint to {path}", flush=True)
            with open(os.path.join(folder, "optimizer.pt"), "wb") as f:
                f.write(b"fake optimizer state")
            print(f"Saved optimizer to {os.path.join(folder, 'optimizer.pt')}", flush=True)
    bar.close()
    if not train.get("disable_sampling", False):
        sample(folder, sample_cfg, total)
    path = os.path.join(folder, f"{name}.safetensors")
    save(path, total)
    print(f"Saved checkpoint to {path}", flush=True)


if __name__ == "__main__":
    main()
