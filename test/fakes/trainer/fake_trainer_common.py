"""Shared parts of the fake kohya sd-scripts and ai-toolkit trainers (see README in this folder).

What the real trainers print is in shared/reference/training.md; the fakes reproduce it: tqdm lines
on stderr separated by \\r, accelerate prints and saves on stdout, real .safetensors files with the
trainers' metadata, the error tails and exit codes.

Failure modes come from a marker file `fake-trainer.json` in the dataset folder (the parent of the
image folders), or the FAKE_TRAINER env var, as JSON:
  {"fail": "oom|nan|no_data|gated|killed|stall|crash", "failAtStep": 3, "stepMs": 5}
"""
import json
import os
import signal
import struct
import sys
import time


def load_settings(dataset_root):
    settings = {}
    if os.environ.get("FAKE_TRAINER"):
        settings.update(json.loads(os.environ["FAKE_TRAINER"]))
    marker = os.path.join(dataset_root, "fake-trainer.json") if dataset_root else None
    if marker and os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            settings.update(json.load(f))
    return settings


def fmt_clock(seconds):
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Bar:
    """tqdm's non-TTY output: updates separated by \\r, padded when shorter, one \\n on close."""

    def __init__(self, desc, total, initial=0):
        self.desc, self.total, self.n, self.start, self.last_len = desc, total, initial, time.time(), 0
        self.postfix = ""
        self.render()

    def render(self):
        pct = int(self.n * 100 / self.total) if self.total else 100
        filled = int(self.n * 10 / self.total) if self.total else 10
        cells = ("█" * filled).ljust(10)
        elapsed = time.time() - self.start
        if self.n > 0:
            rate = elapsed / self.n
            remaining = fmt_clock(rate * (self.total - self.n))
            speed = f"{rate:5.2f}s/it" if rate >= 1 else f"{(1 / rate) if rate else 0:5.2f}it/s"
        else:
            remaining, speed = "?", "?it/s"
        post = f", {self.postfix}" if self.postfix else ""
        line = f"{self.desc}: {pct:3d}%|{cells}| {self.n}/{self.total} [{fmt_clock(elapsed)}<{remaining}, {speed}{post}]"
        pad = " " * max(0, self.last_len - len(line))
        self.last_len = len(line)
        sys.stderr.write("\r" + line + pad)
        sys.stderr.flush()

    def update(self, postfix):
        self.n += 1
        self.postfix = postfix
        self.render()

    def close(self):
        sys.stderr.write("\n")
        sys.stderr.flush()


def write_safetensors(path, metadata, slow=True):
    """A real safetensors file: u64 LE header length, JSON header (padded to 8), tensor bytes.
    Written in two parts with a pause, like a large file being saved, so readers see it incomplete."""
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [4, 132]},
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": {"dtype": "F32", "shape": [8, 4], "data_offsets": [132, 260]},
    }
    header = dict(tensors)
    header["__metadata__"] = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    data = struct.pack("<f", 64.0) + struct.pack("<32f", *([0.01] * 32)) + struct.pack("<32f", *([0.0] * 32))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(data[:100])
        f.flush()
        if slow:
            time.sleep(0.05)
        f.write(data[100:])


def die_killed():
    """The OOM killer: SIGKILL, no traceback (the parent sees signal SIGKILL / exit 137)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def traceback_tail(script, exc_line):
    sys.stderr.write("\n")
    sys.stderr.write("Traceback (most recent call last):\n")
    sys.stderr.write(f'  File "{script}", line 1, in <module>\n')
    sys.stderr.write(f"{exc_line}\n")
    sys.stderr.flush()


def stall_forever():
    while True:
        time.sleep(1)


def write_png(path, width, height, rgb):
    """A real PNG (8-bit RGB, one colour), written without PIL: signature, IHDR, IDAT (zlib), IEND."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height, 6)) + chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)


def write_jpeg(path, width, height):
    """A real baseline JPEG (grayscale, mid-grey), written without PIL. Every 8x8 block is DC 0 and
    end-of-block; one-symbol Huffman tables make each block the two bits "00"."""
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = blocks * 2
    data = bytes((bits + 7) // 8)
    if bits % 8:  # pad the last byte with 1 bits, as the standard says
        data = data[:-1] + bytes([(1 << (8 - bits % 8)) - 1])

    def segment(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    one_symbol = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1 for symbol 0
    body = b"\xff\xd8"
    body += segment(0xDB, b"\x00" + bytes([1] * 64))  # quantisation table 0, all ones
    body += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    body += segment(0xC4, b"\x00" + one_symbol)  # DC table 0
    body += segment(0xC4, b"\x10" + one_symbol)  # AC table 0
    body += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    body += data + b"\xff\xd9"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
