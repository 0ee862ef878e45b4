"""Hostile inputs for the ckptio tool, one class of defect at a time: damaged containers made
with h5py (deep JSON, external storage and links, virtual and chunked datasets, lying sizes,
overlapping pieces), odd checkpoint roots (malformed `latest`, symlinks, FIFOs, files named
like checkpoints), hostile safetensors and .pt files, bad command lines.

build_corpus() makes every input in a folder and returns the cases: the command, the exit
code the tool must give and a piece of the message it must print. test_hostile.py runs them
(also under mpiexec -n 2, where every rank must agree and none may hang); run as a script,
this file prints what a given tool binary does with each case, for comparing builds:

    /usr/bin/python3 hostile_corpus.py --tool build/tools/ckptio --root ROOT [--mpiexec mpiexec]

Needs h5py and numpy (Debian's /usr/bin/python3 has them); torch for the .pt cases.
"""

import argparse
import collections
import json
import os
import shutil
import struct
import subprocess
import sys

import h5py
import numpy

LATEST_NAME = "epoch1-global_step20.h5"
OLDER_NAME = "epoch0-global_step10.h5"
EXIT_SUCCESS, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_IO = 0, 1, 2, 3

# kind: the class of defect (docs/RELIABILITY.md); message: in stdout or stderr; collective:
# also run under mpiexec -n 2; outputs: removed before each run (what a run may have written).
Case = collections.namedtuple("Case", "kind name argv exit_code message collective outputs", defaults=[()])

DEPTH = 100_000  # the nesting that crashed the readers with SIGSEGV


def deep_json(depth=DEPTH):
    return "[" * depth + "]" * depth


# ---- containers (h5py edits of a copy of a valid container) ----

def copy_container(source, directory, name):
    path = os.path.join(directory, name)
    shutil.copyfile(source, path)
    return path


def read_index(f):
    return json.loads(bytes(f["/_ckptio/index"][()]).decode())


def write_bytes_dataset(f, path, data):
    del f[path]
    f.create_dataset(path, data=numpy.frombuffer(data, dtype=numpy.uint8))


def write_index(f, index):
    """Replaces the index; drops its checksum attribute (optional in the format) so that the
    reader gets as far as decoding it."""
    write_bytes_dataset(f, "/_ckptio/index", json.dumps(index).encode())
    if "index_xxh3" in f.attrs:
        del f.attrs["index_xxh3"]


def edited(source, directory, name, edit):
    path = copy_container(source, directory, name)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def flip_data_byte(path, dataset):
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def container_cases(d, root, outside):
    source = os.path.join(root, LATEST_NAME)
    cases = []

    def add(kind, name, edit, message, commands=("inspect", "verify", "export"), exit_code=EXIT_BAD_INPUT):
        path = edited(source, d, name + ".h5", edit)
        for command in commands:
            argv = [command, path]
            outputs = ()
            if command == "export":
                outputs = (os.path.join(d, name + ".safetensors"),)
                argv += ["--group", "model", "--out", outputs[0], "--quiet"]
            cases.append(Case(kind, f"{name}/{command}", argv, exit_code, message, command != "inspect", outputs))

    # Crashes: recursion on deep JSON.
    add("crash", "deep_running_state",
        lambda f: write_bytes_dataset(f, "/_ckptio/running_state", ('{"epoch":1,"step":3,"global_step":20,'
                                                                     '"extras":' + deep_json() + "}").encode()),
        "nested more than 128 levels deep", commands=("inspect", "export"))

    def deep_index(f):
        write_bytes_dataset(f, "/_ckptio/index", ('{"world_size":2,"tensors":' + deep_json() + "}").encode())
        del f.attrs["index_xxh3"]
    add("crash", "deep_index", deep_index, "nested more than 128 levels deep")

    # Reading outside the folder: external storage, external and soft links, virtual datasets.
    secret = os.path.join(outside, "secret.bin")
    with open(secret, "wb") as file:
        file.write(bytes(range(256)) * 64)

    def external_storage(f):
        del f["/model/embed.weight"]
        f.create_dataset("/model/embed.weight", shape=(8, 4), dtype="<f4", external=[(secret, 0, 128)])
    add("outside", "external_storage", external_storage, "keeps its data in external files",
        commands=("verify", "export"))

    other = os.path.join(outside, "other.h5")
    with h5py.File(other, "w") as f:
        f.create_dataset("w", data=numpy.zeros((8, 4), dtype="<f4"))

    def external_link(f):
        del f["/model/embed.weight"]
        f["/model/embed.weight"] = h5py.ExternalLink(other, "w")
    add("outside", "external_link", external_link, "is an external link (to another file)",
        commands=("verify", "export"))

    def external_group(f):
        del f["/model"]
        f["/model"] = h5py.ExternalLink(other, "/")
    add("outside", "external_group", external_group, "/model is an external link", commands=("verify", "export"))

    def soft_link(f):
        del f["/model/embed.weight"]
        f["/model/embed.weight"] = h5py.SoftLink("/optimizer/state.embed.weight.exp_avg")
    add("outside", "soft_link", soft_link, "is a soft link", commands=("verify", "export"))

    def virtual(f):
        layout = h5py.VirtualLayout(shape=(8, 4), dtype="<f4")
        layout[:] = h5py.VirtualSource(other, "w", shape=(8, 4))
        del f["/model/embed.weight"]
        f.create_virtual_dataset("/model/embed.weight", layout)
    add("outside", "virtual_dataset", virtual, "is a virtual dataset", commands=("verify", "export"))

    def chunked(f):
        data = f["/model/embed.weight"][()]
        del f["/model/embed.weight"]
        f.create_dataset("/model/embed.weight", data=data, chunks=(4, 4), compression="gzip")
    add("resource", "chunked_dataset", chunked, "is chunked", commands=("verify", "export"))

    # Wrong successes: a flipped data byte; a hole hidden by a duplicated piece; overflow.
    flipped = copy_container(source, d, "flipped.h5")
    flip_data_byte(flipped, "/ema/embed.weight")
    cases.append(Case("wrong-success", "flipped/export",
                      ["export", flipped, "--group", "ema", "--out", os.path.join(d, "flipped.safetensors"),
                       "--quiet"], EXIT_BAD_INPUT, "does not match its checksum", True,
                      (os.path.join(d, "flipped.safetensors"),)))
    cases.append(Case("wrong-success", "flipped/verify", ["verify", flipped], EXIT_BAD_INPUT,
                      "does not match its checksum", True))

    def duplicated_piece(f):
        index = read_index(f)
        for t in index["tensors"]:
            if t["group"] == "model" and t["name"] == "embed.weight":
                t["pieces"] = [t["pieces"][0], dict(t["pieces"][0])]
        write_index(f, index)
    add("wrong-success", "duplicated_piece", duplicated_piece, "do not cover", commands=("export",))
    add("wrong-success", "duplicated_piece_verify", duplicated_piece, "is incomplete", commands=("verify",))

    def overflowing_shape(f):
        index = read_index(f)
        index["tensors"][0]["shape"] = [2 ** 62, 4]
        index["tensors"][0]["pieces"] = []
        write_index(f, index)
    add("wrong-success", "overflowing_shape", overflowing_shape, "overflows 64 bits",
        commands=("inspect",))

    # Resources: declared sizes beyond the file, a sparse index.
    def huge_tensor(f):
        index = read_index(f)
        for t in index["tensors"]:
            if t["group"] == "ema" and t["name"] == "embed.weight":
                t["shape"] = [2 ** 48]
                t["pieces"] = []
        write_index(f, index)
    add("resource", "huge_declared_tensor", huge_tensor, "more than the file's", commands=("inspect", "export"))

    def sparse_index(f):
        del f["/_ckptio/index"]
        f.create_dataset("/_ckptio/index", shape=(1 << 30,), dtype="u1")  # never written: reads as zeros
        del f.attrs["index_xxh3"]
    add("resource", "sparse_index", sparse_index, "NUL byte at offset 0", commands=("inspect", "verify"))

    # Messages: a bad format attribute names the file.
    def bad_version_attribute(f):
        del f.attrs["ckptio_format_version"]
        f.attrs["ckptio_format_version"] = numpy.bytes_(b"one")
    add("message", "bad_version_attribute", bad_version_attribute, "bad_version_attribute.h5: attribute",
        commands=("inspect",))
    return cases


# ---- checkpoint roots ----

def make_root(d, root, name, latest=None, extra=None):
    """A root holding a copy of the latest checkpoint (and `extra(root)` applied)."""
    new_root = os.path.join(d, name)
    os.mkdir(new_root)
    shutil.copyfile(os.path.join(root, LATEST_NAME), os.path.join(new_root, LATEST_NAME))
    if latest is not None:
        with open(os.path.join(new_root, "latest"), "wb") as file:
            file.write(latest)
    if extra:
        extra(new_root)
    return new_root


def root_cases(d, root, outside):
    cases = []
    for name, latest, message in [
        ("latest_empty", b"", "it is empty"),
        ("latest_garbage", b"\x00\x01garbage\xff", "does not name a checkpoint file"),
        ("latest_traversal", b"../" + LATEST_NAME.encode() + b"\n", "does not name a checkpoint file"),
        ("latest_absolute", b"/etc/" + LATEST_NAME.encode() + b"\n", "does not name a checkpoint file"),
        ("latest_two_lines", (LATEST_NAME + "\n" + OLDER_NAME + "\n").encode(), "does not name a checkpoint file"),
    ]:
        cases.append(Case("data-loss", name, ["inspect", make_root(d, root, name, latest)], EXIT_BAD_INPUT, message,
                          False))

    def latest_symlink(r):
        with open(os.path.join(outside, "latest-target"), "w") as file:
            file.write(LATEST_NAME + "\n")
        os.symlink(os.path.join(outside, "latest-target"), os.path.join(r, "latest"))
    cases.append(Case("message", "latest_symlink", ["inspect", make_root(d, root, "latest_symlink", None,
                                                                         latest_symlink)],
                      EXIT_BAD_INPUT, "latest is a symbolic link", False))

    def latest_fifo(r):
        os.mkfifo(os.path.join(r, "latest"))
    r = make_root(d, root, "latest_fifo", None, latest_fifo)
    cases.append(Case("hang", "latest_fifo/inspect", ["inspect", r], EXIT_BAD_INPUT, "latest is a FIFO", False))
    cases.append(Case("hang", "latest_fifo/export", ["export", r, "--out", os.path.join(d, "lf.safetensors")],
                      EXIT_BAD_INPUT, "latest is a FIFO", True))

    def checkpoint_fifo(r):
        os.remove(os.path.join(r, LATEST_NAME))
        os.mkfifo(os.path.join(r, LATEST_NAME))
    r = make_root(d, root, "checkpoint_fifo", (LATEST_NAME + "\n").encode(), checkpoint_fifo)
    cases.append(Case("hang", "checkpoint_fifo/inspect", ["inspect", r], EXIT_BAD_INPUT, "is a FIFO", False))
    cases.append(Case("hang", "checkpoint_fifo/verify", ["verify", r], EXIT_BAD_INPUT,
                      "which is named like a checkpoint but it is a FIFO", True))
    cases.append(Case("hang", "fifo_file/verify", ["verify", os.path.join(r, LATEST_NAME)], EXIT_IO,
                      "is a FIFO, not a regular file", True))

    def checkpoint_symlink_out(r):
        shutil.move(os.path.join(r, LATEST_NAME), os.path.join(outside, "moved.h5"))
        os.symlink(os.path.join(outside, "moved.h5"), os.path.join(r, LATEST_NAME))
    r = make_root(d, root, "checkpoint_symlink", (LATEST_NAME + "\n").encode(), checkpoint_symlink_out)
    cases.append(Case("outside", "checkpoint_symlink/inspect", ["inspect", r], EXIT_BAD_INPUT,
                      "is a symbolic link", False))
    cases.append(Case("outside", "checkpoint_symlink/export", ["export", r, "--out", os.path.join(d, "cs.safetensors"),
                                                               "--quiet"], EXIT_BAD_INPUT, "is a symbolic link", True))

    def checkpoint_folder(r):
        os.remove(os.path.join(r, LATEST_NAME))
        os.mkdir(os.path.join(r, LATEST_NAME))
    r = make_root(d, root, "checkpoint_folder", (LATEST_NAME + "\n").encode(), checkpoint_folder)
    cases.append(Case("message", "checkpoint_folder/inspect", ["inspect", r], EXIT_BAD_INPUT, "is a folder", False))
    cases.append(Case("message", "checkpoint_folder_direct/inspect", ["inspect", os.path.join(r, LATEST_NAME)],
                      EXIT_IO, "is a folder, not a container file", False))

    def fake_checkpoint(r):
        with open(os.path.join(r, "epoch9-global_step90.h5"), "w") as file:
            file.write("not a checkpoint\n")
    r = make_root(d, root, "fake_checkpoint", (LATEST_NAME + "\n").encode(), fake_checkpoint)
    cases.append(Case("data-loss", "fake_checkpoint/ls", ["ls", r], EXIT_SUCCESS,
                      "epoch9-global_step90.h5, which is named like a checkpoint but it is not an HDF5 file", False))
    return cases


# ---- export targets and command lines ----

def export_cases(d, root):
    cases = []
    ckpt = os.path.join(root, LATEST_NAME)
    work = os.path.join(d, "export_targets")
    os.mkdir(work)
    text = os.path.join(work, "notes.txt")
    with open(text, "w") as file:
        file.write("precious notes\n")
    fifo = os.path.join(work, "fifo.safetensors")
    os.mkfifo(fifo)
    device = os.path.join(work, "null.safetensors")
    try:
        os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
    except PermissionError:
        device = None

    def export_to(name, target, exit_code, message):
        """Exports a root's latest checkpoint (a copy of its own) to target(root)."""
        case_root = os.path.join(work, name)
        shutil.copytree(root, case_root)
        source = os.path.join(case_root, LATEST_NAME)
        cases.append(Case("data-loss", "export_out_" + name, ["export", source, "--out", target(case_root), "--quiet"],
                          exit_code, message, True))

    export_to("input", lambda r: os.path.join(r, LATEST_NAME), EXIT_USAGE, "it is the checkpoint being exported")
    export_to("other_checkpoint", lambda r: os.path.join(r, OLDER_NAME), EXIT_USAGE,
              "the name belongs to a checkpoint root's own files")
    export_to("latest", lambda r: os.path.join(r, "latest"), EXIT_USAGE,
              "the name belongs to a checkpoint root's own files")
    export_to("text_file", lambda r: text, EXIT_USAGE, "it exists and is not a safetensors file")
    export_to("fifo", lambda r: fifo, EXIT_USAGE, "it is a FIFO, not a regular file")
    if device:
        export_to("device", lambda r: device, EXIT_USAGE, "it is a character device, not a regular file")
    export_to("missing_folder", lambda r: os.path.join(r, "no", "such", "m.safetensors"), EXIT_IO, "does not exist")
    cases.append(Case("message", "export_out_empty", ["export", ckpt, "--out", "", "--quiet"], EXIT_USAGE,
                      "--out is empty", False))
    out = os.path.join(work, "x.safetensors")
    cases.append(Case("wrong-success", "export_empty_shard_size",
                      ["export", ckpt, "--out", out, "--max-shard-size", ""], EXIT_USAGE, "invalid size ''", False,
                      (out,)))
    return cases


# ---- safetensors ----

def safetensors_bytes(header, data=b""):
    text = json.dumps(header, separators=(",", ":")) if not isinstance(header, str) else header
    raw = text.encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def safetensors_cases(d, outside):
    cases = []
    folder = os.path.join(d, "st")
    os.mkdir(folder)

    def write(name, content):
        path = os.path.join(folder, name)
        with open(path, "wb") as file:
            file.write(content)
        return path

    deep = write("deep_shape.safetensors",
                 safetensors_bytes('{"w":{"dtype":"F32","shape":' + deep_json() + ',"data_offsets":[0,0]}}'))
    cases.append(Case("crash", "safetensors_deep_shape", ["inspect", deep], EXIT_BAD_INPUT,
                      "nests arrays and objects more than 128 levels deep", False))
    nul = write("nul_name.safetensors", safetensors_bytes('{"a\\u0000b":{"dtype":"F32","shape":[1],'
                                                          '"data_offsets":[0,4]},"a\\u0000b":{}}', b"\0" * 4))
    cases.append(Case("message", "safetensors_nul_name", ["inspect", nul], EXIT_BAD_INPUT, "tensor 'a\\x00b'", False))
    fifo = os.path.join(folder, "fifo.safetensors")
    os.mkfifo(fifo)
    cases.append(Case("hang", "safetensors_fifo", ["inspect", fifo], EXIT_IO, "is a FIFO", False))

    text = write("notes.txt", b"These are my notes, not a checkpoint.\n" * 4)
    cases.append(Case("message", "inspect_text_file", ["inspect", text], EXIT_BAD_INPUT,
                      "is not a ckptio container (no HDF5 signature), a PyTorch .pt file or a safetensors file",
                      False))

    # A sharded export whose shard is a symlink out of its folder.
    good = safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    evil = os.path.join(d, "evil_export")
    os.mkdir(evil)
    with open(os.path.join(outside, "elsewhere.safetensors"), "wb") as file:
        file.write(good)
    os.symlink(os.path.join(outside, "elsewhere.safetensors"), os.path.join(evil, "model-00001-of-00001.safetensors"))
    with open(os.path.join(evil, "model.safetensors.index.json"), "w") as file:
        json.dump({"metadata": {"total_size": 4}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}, file)
    cases.append(Case("outside", "safetensors_shard_symlink", ["inspect", evil], EXIT_BAD_INPUT, "outside", False))

    index_fifo = os.path.join(d, "index_fifo")
    os.mkdir(index_fifo)
    os.mkfifo(os.path.join(index_fifo, "model.safetensors.index.json"))
    cases.append(Case("hang", "safetensors_index_fifo", ["inspect", index_fifo], EXIT_IO, "is a FIFO", False))
    return cases


# ---- PyTorch ----

def torch_cases(d):
    try:
        import torch
    except ImportError:
        return []
    cases = []
    # A 1-element storage viewed as 2^28 elements with stride 0: 1 GiB once materialised.
    stride0 = os.path.join(d, "stride0.pt")
    torch.save({"w": torch.zeros(1).expand(1 << 28)}, stride0)
    cases.append(Case("resource", "pt_stride0_view/convert", ["convert", stride0, "--out", os.path.join(d, "s0.h5")],
                      EXIT_BAD_INPUT, "such views may add at most 64 MiB", True, (os.path.join(d, "s0.h5"),)))
    # A small pickle that shares one list many times (memo): 2^22 tensors once flattened.
    level = [torch.zeros(1), torch.zeros(1)]
    for _ in range(21):
        level = [level, level]
    bomb = os.path.join(d, "shared_lists.pt")
    torch.save({"model": level}, bomb)
    cases.append(Case("resource", "pt_shared_lists/inspect", ["inspect", bomb], EXIT_BAD_INPUT,
                      "flattens to more than 1000000 tensors and values", False))
    # A tensor name that a container cannot hold (a '/'): the input's problem, not usage.
    slash = os.path.join(d, "slash_name.pt")
    torch.save({"a/b": torch.zeros(1)}, slash)
    cases.append(Case("message", "pt_bad_name/convert", ["convert", slash, "--out", os.path.join(d, "slash.h5")],
                      EXIT_BAD_INPUT, "cannot be converted", True, (os.path.join(d, "slash.h5"),)))
    good = os.path.join(d, "good.pt")
    torch.save({"w": torch.zeros(2)}, good)
    cases.append(Case("message", "convert_missing_folder",
                      ["convert", good, "--out", os.path.join(d, "no", "such", "x.h5")], EXIT_IO,
                      "output folder", False))
    fifo = os.path.join(d, "fifo.pt")
    os.mkfifo(fifo)
    cases.append(Case("hang", "pt_fifo/inspect", ["inspect", fifo], EXIT_IO, "is a FIFO", False))
    return cases


def build_corpus(directory, root):
    """Makes every hostile input under `directory` from the valid root `root`; returns the cases."""
    outside = os.path.join(directory, "outside")
    os.mkdir(outside)
    cases = []
    cases += container_cases(directory, root, outside)
    cases += root_cases(directory, root, outside)
    cases += export_cases(directory, root)
    cases += safetensors_cases(directory, outside)
    cases += torch_cases(directory)
    return cases


def remove_outputs(case):
    for path in case.outputs:
        if os.path.isdir(path + ".ckptio-convert"):
            shutil.rmtree(path + ".ckptio-convert")
        if os.path.lexists(path):
            os.remove(path)


def run(tool, argv, timeout, mpiexec=None, ranks=2):
    """(exit code or "HANG"/"SIGNAL n", stdout + stderr)."""
    command = ([mpiexec, "-n", str(ranks), "--oversubscribe"] if mpiexec else []) + [tool] + argv
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout,
                                start_new_session=True)
    except subprocess.TimeoutExpired as expired:
        return "HANG", (expired.stderr or b"").decode(errors="replace") if isinstance(expired.stderr, bytes) else ""
    code = result.returncode
    return (code if code >= 0 else f"SIGNAL {-code}"), result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--root", required=True, help="a root made by make_checkpoint")
    parser.add_argument("--mpiexec")
    parser.add_argument("--work", default="/tmp/ckptio-hostile-corpus")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    cases = build_corpus(args.work, args.root)
    good = 0
    for case in cases:
        runs = [("1", None)] + ([("2", args.mpiexec)] if args.mpiexec and case.collective else [])
        for ranks, mpiexec in runs:
            remove_outputs(case)
            code, err = run(args.tool, case.argv, args.timeout, mpiexec)
            ok = code == case.exit_code and case.message in err
            good += ok
            first = next((line for line in err.splitlines() if "error" in line or "warn" in line or "- " in line), "")
            print(f"{'ok  ' if ok else 'FAIL'} {case.kind:14} {case.name:38} np{ranks} want {case.exit_code} got "
                  f"{code!s:9} {first[:150]}")
    print(f"{good} of {sum(1 + (bool(args.mpiexec) and c.collective) for c in cases)} runs as expected")


if __name__ == "__main__":
    main()
