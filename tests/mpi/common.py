"""What the MPI tests share: finding mpirun, running gradc under it, reading checkpoints."""
import json
import os
import shutil
import struct
import subprocess
import sys

import array

SKIP = 77


def mpirun_or_skip(gradc):
    """The mpirun command line prefix, or exit 77 (skipped) with a message."""
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("skipped: mpirun not found (Debian: openmpi-bin)")
        sys.exit(SKIP)
    probe = subprocess.run([gradc, "train", "--distributed", "/dev/null"], capture_output=True, text=True)
    if "built without MPI" in probe.stderr:
        print("skipped: this gradc was built without MPI (GRADC_MPI=OFF)")
        sys.exit(SKIP)
    return [mpirun, "--oversubscribe", "--allow-run-as-root"]


def env():
    e = dict(os.environ)
    e["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    e["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return e


def read_safetensors(path):
    """{name: list of floats} of an F32 safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = array.array("f", data[a:b]).tolist()
    return out
