"""What the MPI tests share: finding mpirun, running gradc under it, reading checkpoints."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402

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
    tensors, _ = clitest.read_safetensors(path)
    return {name: values for name, (_, _, values) in tensors.items()}
