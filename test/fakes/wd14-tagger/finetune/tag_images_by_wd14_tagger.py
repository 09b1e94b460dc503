"""A stand-in for kohya sd-scripts' finetune/tag_images_by_wd14_tagger.py, for tests.

It takes the same arguments as the real tagger, refuses to run without the model folder (the real one
would try to download; we run offline), and writes `<stem><caption_extension>` next to each image: one
line of tags joined by the separator, ending in a newline, with underscores as the tagger writes them
unless --remove_underscore. It never inserts a trigger word (the real one does not either).
Set FAKE_TAGGER_FAIL=1 to make it crash the way Python does.
"""
import argparse
import os
import sys

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Content tags mixed with style tags, as WD14 really outputs them for monochrome comic art.
TAGS = ["1girl", "solo", "monochrome", "greyscale", "short_hair", "comic", "lineart", "smile", "traditional_media", "looking_at_viewer"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("train_data_dir")
    parser.add_argument("--repo_id", default="SmilingWolf/wd-v1-4-convnext-tagger-v2")
    parser.add_argument("--model_dir", default="wd14_tagger_model")
    parser.add_argument("--force_download", action="store_true")
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--thresh", type=float, default=0.35)
    parser.add_argument("--general_threshold", type=float, default=None)
    parser.add_argument("--character_threshold", type=float, default=None)
    parser.add_argument("--caption_extension", default=".txt")
    parser.add_argument("--caption_separator", default=", ")
    parser.add_argument("--remove_underscore", action="store_true")
    parser.add_argument("--undesired_tags", default="")
    parser.add_argument("--recursive", action="store_true")
    args = parser.parse_args()

    if os.environ.get("FAKE_TAGGER_FAIL") == "1":
        print("Traceback (most recent call last):", file=sys.stderr)
        print('  File "finetune/tag_images_by_wd14_tagger.py", line 1, in <module>', file=sys.stderr)
        print("onnxruntime.capi.onnxruntime_pybind11_state.Fail: [ONNXRuntimeError] : 1 : FAIL", file=sys.stderr)
        sys.exit(1)

    model_location = os.path.join(args.model_dir, args.repo_id.replace("/", "_"))
    if not os.path.exists(model_location) or args.force_download:
        print(f"downloading wd14 tagger model from hf_hub. id: {args.repo_id}", file=sys.stderr)
        print("huggingface_hub.errors.LocalEntryNotFoundError: offline", file=sys.stderr)
        sys.exit(1)
    print("using existing wd14 tagger model", file=sys.stderr)

    images = sorted(
        os.path.join(args.train_data_dir, f)
        for f in os.listdir(args.train_data_dir)
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    print(f"found {len(images)} images.", file=sys.stderr)
    undesired = {t.strip() for t in args.undesired_tags.split(",") if t.strip()}
    for path in images:
        tags = [t for t in TAGS if t not in undesired]
        if args.remove_underscore:
            tags = [t.replace("_", " ") if len(t) > 3 else t for t in tags]
        stem = os.path.splitext(path)[0]
        with open(stem + args.caption_extension, "wt", encoding="utf-8") as f:
            f.write(args.caption_separator.join(tags) + "\n")
    print("done!", file=sys.stderr)


if __name__ == "__main__":
    main()
