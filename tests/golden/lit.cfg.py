# lit configuration of the golden tests: each .grad file here holds a model, RUN lines that
# print one of its stages with `gradc inspect`, and FileCheck CHECK lines on that output.
#   lit --param gradc=PATH/TO/gradc [--param exec_root=DIR] tests/golden
import os

import lit.formats

config.name = "gradc-golden"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".grad"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = lit_config.params.get("exec_root", "/tmp/gradc-golden")

gradc = lit_config.params.get("gradc")
if not gradc:
    lit_config.fatal("pass the gradc binary with --param gradc=PATH")
config.substitutions.append(("%gradc", os.path.abspath(gradc)))
config.substitutions.append(("%examples", os.path.join(config.test_source_root, "..", "..", "examples")))

llvm_bin = "/usr/lib/llvm-19/bin"  # FileCheck, not, count (Debian's llvm-19-tools)
config.environment["PATH"] = os.pathsep.join([llvm_bin, os.environ.get("PATH", "")])
