#!/usr/bin/env python3
"""Tests of ahead-of-time compilation; one mode per ctest (tests/aot/CMakeLists.txt).

  embed    the embedded C example has no libLLVM among its libraries and saves the very
           checkpoint `gradc train` saves with the same seed and settings, byte for byte
  shared   `gradc compile --emit shared` loaded with dlopen and trained through the header's
           slot enums: the same checkpoint as `gradc train`, byte for byte
  install  `cmake --install` into a temporary prefix; examples/embed configured and built
           against it with find_package(gradc), using the installed gradc
  cross    `--target aarch64-linux-gnu --emit obj` is an AArch64 ELF object; other outputs
           (`-o -`, standard output) and refusals
  header   every example's header compiles as strict C99 and as C++, links with its object
           and libgradc_runtime, and carries the same type block as gradc_runtime.h; two
           models link into one C and one C++ program; a float64 object trains as gradc train;
           a batch dim declared after another dim is the one the header's example sets; a
           program that does not call init links without libgradc_runtime (--gc-sections);
           gradc_checkpoint_load fills an uninitialised gradc_counters; gradc_train resumed
           mid-epoch keeps the checkpoint's data order, and a run of many epochs does not grow
           in memory
"""
import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser()
p.add_argument("mode")
p.add_argument("--gradc", required=True)
p.add_argument("--embed", required=True)
p.add_argument("--runtime-dir", required=True)
p.add_argument("--source", required=True)
p.add_argument("--build", required=True)
a = p.parse_args()

DATA = os.path.join(a.source, "examples", "data")
DIGITS = os.path.join(a.source, "examples", "digits.grad")
TRAIN = os.path.join(DATA, "digits_train.csv")
TEST = os.path.join(DATA, "digits_test.csv")
RUNTIME_H = os.path.join(a.source, "runtime")
failures = []
# A sanitizer build (GRADC_SANITIZE) instruments libgradc_runtime.so: the programs built here
# against it must then be instrumented too, by the compiler that built it (its ASan runtime has
# to come first): GCC's libasan, or clang's shared runtime (-shared-libsan), whose directory
# names the clang (LLVM/lib/clang/V/lib/linux: LLVM/bin/clang).
CC, CXX, SAN, SAN_LINK = "cc", "g++", [], []
_libs = subprocess.run(["ldd", os.path.join(a.runtime_dir, "libgradc_runtime.so")], capture_output=True,
                       text=True).stdout
_clang_rt = re.search(r"libclang_rt\.asan\S*\.so => (\S+)", _libs)
if _clang_rt:
    llvm = _clang_rt.group(1).split("/lib/clang/")[0]
    CC, CXX = os.path.join(llvm, "bin", "clang"), os.path.join(llvm, "bin", "clang++")
    SAN = ["-fsanitize=address,undefined"]
    SAN_LINK = ["-shared-libsan", "-Wl,-rpath," + os.path.dirname(_clang_rt.group(1))]
elif "libasan" in _libs:
    SAN = ["-fsanitize=address,undefined"]


def run(cmd, ok=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if ok and r.returncode != 0:
        sys.exit(f"FAILED ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def same_file(x, y):
    with open(x, "rb") as f, open(y, "rb") as g:
        return f.read() == g.read()


def no_llvm(binary):
    libs = run(["ldd", binary]).stdout
    return "libllvm" not in libs.lower(), libs  # (clang's sanitizer runtime lives under llvm-19/)


def cc_link(src, out, incs, extra=()):
    cmd = [CC, "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror", src, "-o", out]
    cmd += [f"-I{i}" for i in incs] + list(extra) + SAN + SAN_LINK
    cmd += [f"-L{a.runtime_dir}", "-lgradc_runtime", f"-Wl,-rpath,{a.runtime_dir}", "-lm", "-ldl"]
    run(cmd)


def mode_embed(tmp):
    ok, libs = no_llvm(a.embed)
    check(ok, "embed_digits does not load libLLVM (ldd)")
    check("libgradc_runtime" in libs, "embed_digits loads libgradc_runtime")
    ok, _ = no_llvm(os.path.join(a.runtime_dir, "libgradc_runtime.so"))
    check(ok, "libgradc_runtime.so does not need libLLVM (ldd)")
    mine, theirs = os.path.join(tmp, "embed.safetensors"), os.path.join(tmp, "train.safetensors")
    out = run([a.embed, TRAIN, TEST, mine, "10"]).stdout
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--epochs", "10", "--save", theirs])
    check(same_file(mine, theirs), "embed and gradc train save the same checkpoint, byte for byte")
    m = re.search(r"test loss \S+  accuracy (\S+)", out)
    check(m is not None and float(m.group(1)) >= 0.9, f"embed prints the test accuracy: {out.strip().splitlines()[-1]}")
    # The same accuracy as `gradc eval` of gradc train's weights.
    ev = run([a.gradc, "eval", DIGITS, "--data", TEST, "--weights", theirs]).stdout
    e = re.search(r"accuracy (\S+)", ev)
    check(m is not None and e is not None and abs(float(m.group(1)) - float(e.group(1))) < 5e-5,
          f"the test accuracy equals gradc eval's ({e.group(1) if e else ev.strip()})")


def mode_shared(tmp):
    so, h = os.path.join(tmp, "digits.so"), os.path.join(tmp, "digits.h")
    run([a.gradc, "compile", DIGITS, "--emit", "shared", "-o", so, "--header", h])
    check("shared object" in run(["file", so]).stdout, "--emit shared writes a shared object")
    if os.uname().machine == "x86_64":  # the host's triple spelt another way is the host
        so2 = os.path.join(tmp, "portable.so")
        run([a.gradc, "compile", DIGITS, "--target", "x86_64-linux-gnu", "--cpu", "x86-64-v2",
             "--emit", "shared", "-o", so2])
        check("shared object" in run(["file", so2]).stdout, "--target x86_64-linux-gnu --emit shared")
        os.remove(so2)
    check(not [f for f in os.listdir(tmp) if ".tmp" in f], "no temporary files are left behind")
    # A FIFO (like /dev/null or /dev/stdout) is written in place, not replaced by the linked file.
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    r = run([a.gradc, "compile", DIGITS, "--emit", "shared", "-o", fifo], ok=False,
            env=dict(os.environ, TMPDIR=tmp))
    piped = reader.communicate(timeout=120)[0]
    check(r.returncode == 0 and piped == open(so, "rb").read() and stat.S_ISFIFO(os.stat(fifo).st_mode)
          and sorted(os.listdir(tmp)) == ["digits.h", "digits.so", "fifo"],
          f"--emit shared -o FIFO writes into the FIFO: {r.stderr.strip()}")
    os.unlink(fifo)
    exe = os.path.join(tmp, "load_shared")
    cc_link(os.path.join(a.source, "tests", "aot", "load_shared.c"), exe, [tmp, RUNTIME_H])
    mine, theirs = os.path.join(tmp, "so.safetensors"), os.path.join(tmp, "train.safetensors")
    out = run([exe, so, TRAIN, mine, "2"]).stdout
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--epochs", "2", "--save", theirs])
    check(same_file(mine, theirs), "dlopen'ed step, called through the header, equals gradc train byte for byte")
    check("train loss" in out, "gradc_evaluate runs the dlopen'ed eval function")


def mode_install(tmp):
    prefix = os.path.join(tmp, "prefix")
    run(["cmake", "--install", a.build, "--prefix", prefix])
    for f in ["bin/gradc", "lib/libgradc_runtime.a", "lib/libgradc_runtime.so", "include/gradc_runtime.h",
              "lib/cmake/gradc/gradcConfig.cmake", "lib/cmake/gradc/gradcTargets.cmake"]:
        check(os.path.exists(os.path.join(prefix, f)), f"installed {f}")
    ok, _ = no_llvm(os.path.join(prefix, "lib", "libgradc_runtime.so"))
    check(ok, "the installed libgradc_runtime.so does not need libLLVM")
    bdir = os.path.join(tmp, "embed-build")
    run(["cmake", "-S", os.path.join(a.source, "examples", "embed"), "-B", bdir, "-G", "Ninja",
         f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_C_COMPILER={CC}", f"-DCMAKE_C_FLAGS={' '.join(SAN)}",
         f"-DCMAKE_EXE_LINKER_FLAGS={' '.join(SAN_LINK)}"])
    run(["cmake", "--build", bdir])
    ninja = open(os.path.join(bdir, "build.ninja")).read()
    check(os.path.join(prefix, "bin", "gradc") in ninja, "the embed build runs the installed gradc")
    exe = os.path.join(bdir, "embed_digits")
    ok, libs = no_llvm(exe)
    check(ok and os.path.join(prefix, "lib") in libs, "it links the installed libgradc_runtime, no libLLVM")
    out = run([exe, TRAIN, TEST, "", "1"]).stdout
    check(re.search(r"test loss \S+  accuracy 0\.\d+", out) is not None, "it trains and prints the test accuracy")


def mode_cross(tmp):
    obj, h = os.path.join(tmp, "digits.o"), os.path.join(tmp, "digits.h")
    run([a.gradc, "compile", DIGITS, "--target", "aarch64-linux-gnu", "--emit", "obj", "-o", obj, "--header", h])
    check("ARM aarch64" in run(["file", obj]).stdout, "`file` says ARM aarch64")
    od = run(["llvm-objdump-19", "-f", obj]).stdout
    check("elf64-littleaarch64" in od, "llvm-objdump says elf64-littleaarch64")
    syms = run(["llvm-objdump-19", "-t", obj]).stdout
    for s in ["gradc_digits_step", "gradc_digits_step_work_size", "gradc_digits_eval", "gradc_digits_init"]:
        check(re.search(rf"\s{s}$", syms, re.M) is not None, f"the AArch64 object defines {s}")
    check("aarch64" in open(h).read().split("*/")[0] and "cpu generic" in open(h).read(),
          "the header names the target and the generic CPU")
    asm = os.path.join(tmp, "digits.s")
    run([a.gradc, "compile", DIGITS, "--emit", "asm", "-o", asm])
    check("gradc_digits_step:" in open(asm).read(), "--emit asm writes assembly")
    ll = os.path.join(tmp, "digits.ll")
    run([a.gradc, "compile", DIGITS, "--emit", "llvm", "-o", ll, "--dtype", "f64"])
    text = open(ll).read()
    check("define void @gradc_digits_init" in text and "gradc_init_param_f64" in text,
          "--emit llvm --dtype f64 writes IR whose init calls gradc_init_param_f64")
    r = run([a.gradc, "compile", DIGITS, "--target", "aarch64-linux-gnu", "--emit", "shared",
             "-o", os.path.join(tmp, "x.so")], ok=False)
    check(r.returncode == 2 and r.stderr.startswith("gradc: error: --emit shared")
          and not os.path.exists(os.path.join(tmp, "x.so")),
          f"--emit shared for another target is a bad flag: {r.stderr.strip()}")
    r = run([a.gradc, "compile", DIGITS, "--target", "nonsense-unknown-none", "-o", os.path.join(tmp, "y.o")], ok=False)
    check(r.returncode == 2 and "unsupported target" in r.stderr, f"an unknown target is a bad flag: {r.stderr.strip()}")
    # The x86 and AArch64 back ends also take 32-bit and big-endian relatives: refused too.
    for triple in ["i686-linux-gnu", "x86_64-linux-gnux32", "aarch64-linux-gnu_ilp32",
                   "aarch64_be-linux-gnu", "aarch64_32-apple-watchos"]:
        out = os.path.join(tmp, "t32.o")
        r = run([a.gradc, "compile", DIGITS, "--target", triple, "-o", out], ok=False)
        check(r.returncode == 2 and "64-bit little-endian" in r.stderr and not os.path.exists(out),
              f"--target {triple} is refused: {r.stderr.strip()}")
    r = run([a.gradc, "compile", DIGITS, "--cpu", "nonsense", "-o", os.path.join(tmp, "c.o")], ok=False)
    check(r.returncode == 2 and "unknown CPU `nonsense`" in r.stderr and len(r.stderr.strip().splitlines()) == 1
          and not os.path.exists(os.path.join(tmp, "c.o")), f"an unknown CPU is a bad flag, one line: {r.stderr.strip()}")
    r = run([a.gradc, "compile", DIGITS, "--target", "x86_64-linux-gnu", "--cpu", "i386", "-o",
             os.path.join(tmp, "c.o")], ok=False)
    check(r.returncode == 2 and r.stderr == "gradc: error: CPU `i386` cannot run 64-bit code, which target "
          "`x86_64-unknown-linux-gnu` needs (see gradc compile --help)\n" and not os.path.exists(os.path.join(tmp, "c.o")),
          f"a 32-bit CPU for a 64-bit target is a bad flag, one line (LLVM aborted): {r.stderr.strip()}")
    # A control character in --target or --cpu (a newline pasted into a script) is a bad
    # flag, its message one line with the character escaped; LLVM took the triple.
    for flag, value in (("--target", "x86_64-pc-linux-gnu\nfoo"), ("--target", "x86_64\x1b[31m-linux-gnu"),
                        ("--cpu", "x86-64\tv2")):
        out = os.path.join(tmp, "ctl.o")
        r = run([a.gradc, "compile", DIGITS, flag, value, "-o", out], ok=False)
        shown = value.replace("\n", "\\n").replace("\x1b", "\\x1b")
        check(r.returncode == 2 and r.stderr.startswith(f"gradc: error: {flag} takes ") and f"not '{shown}'" in r.stderr
              and r.stderr.count("\n") == 1 and "\x1b" not in r.stderr and not os.path.exists(out),
              f"{flag} {value!r} is a bad flag, one line: {r.stderr!r}")
    # A target of another object format than ELF is a bad flag (its object linked, then called
    # the code with another convention).
    for triple, what in (("x86_64-pc-windows-msvc", "Windows (COFF objects)"),
                         ("aarch64-apple-darwin", "Apple's systems (Mach-O objects)")):
        out = os.path.join(tmp, "other.o")
        r = run([a.gradc, "compile", DIGITS, "--target", triple, "-o", out], ok=False)
        check(r.returncode == 2 and r.stderr == f"gradc: error: --target {triple}: gradc compiles for ELF systems such "
              f"as Linux, not for {what} (see gradc compile --help)\n" and not os.path.exists(out),
              f"--target {triple} is a bad flag: {r.stderr!r}")
    # An empty --target or --cpu (an unset variable in a script) is a bad flag, not the host.
    for flag in ("--target", "--cpu"):
        out = os.path.join(tmp, "empty.o")
        r = run([a.gradc, "compile", DIGITS, flag, "", "-o", out], ok=False)
        check(r.returncode == 2 and r.stderr == f"gradc: error: {flag}: takes a name, not '' (see gradc compile "
              "--help)\n" and not os.path.exists(out), f"{flag} '' is a bad flag: {r.stderr!r}")
    # `-o -` is standard output, as for clang: text always, an object file or a shared library
    # when standard output is not a terminal. No file named `-` is written.
    obj = os.path.join(tmp, "ref.o")
    run([a.gradc, "compile", DIGITS, "-o", obj])
    for emit, want in (("llvm", b"define void @gradc_digits_init"), ("asm", b"gradc_digits_step:"),
                       ("obj", open(obj, "rb").read()), ("shared", b"\x7fELF")):
        r = subprocess.run([a.gradc, "compile", DIGITS, "--emit", emit, "-o", "-"], capture_output=True, cwd=tmp)
        check(r.returncode == 0 and r.stderr == b"" and (r.stdout == want if emit == "obj" else want in r.stdout)
              and not os.path.exists(os.path.join(tmp, "-")),
              f"--emit {emit} -o - writes to standard output: exit {r.returncode}, {r.stderr!r}")
    # `--header -` is standard output too; the header is the one --header FILE writes.
    hdr = os.path.join(tmp, "ref.h")
    run([a.gradc, "compile", DIGITS, "-o", obj, "--header", hdr])
    r = subprocess.run([a.gradc, "compile", DIGITS, "-o", obj, "--header", "-"], capture_output=True, cwd=tmp)
    check(r.returncode == 0 and r.stdout == open(hdr, "rb").read() and not os.path.exists(os.path.join(tmp, "-")),
          f"--header - writes the header to standard output: exit {r.returncode}, {r.stderr!r}")
    # A standard output that cannot be written (closed, or a full disk) is the error of any
    # command's standard output, exit 1, and the header is not written: not an error about a
    # file /dev/stdout that "does not exist".
    for emit in ("llvm", "obj", "shared"):
        for name, stdout, want in (("closed", None, "Bad file descriptor"), ("full", "/dev/full", "No space left on device")):
            h = os.path.join(tmp, "lost.h")
            out = open(stdout, "wb") if stdout else None
            r = subprocess.run([a.gradc, "compile", DIGITS, "--emit", emit, "-o", "-", "--header", h],
                               stdout=out, stderr=subprocess.PIPE, cwd=tmp,
                               preexec_fn=None if out else (lambda: os.close(1)))
            if out:
                out.close()
            check(r.returncode == 1 and r.stderr.decode() == f"gradc: error: cannot write standard output: {want}\n"
                  and not os.path.exists(h) and not os.path.exists(os.path.join(tmp, "-")),
                  f"--emit {emit} -o - with standard output {name}: exit {r.returncode}, {r.stderr!r}")
    r = subprocess.run([a.gradc, "compile", DIGITS, "-o", obj, "--header", "-"], stdout=None, stderr=subprocess.PIPE,
                       cwd=tmp, preexec_fn=lambda: os.close(1))
    check(r.returncode == 1 and r.stderr.decode() == "gradc: error: cannot write standard output: Bad file descriptor\n",
          f"--header - with standard output closed: exit {r.returncode}, {r.stderr!r}")
    import pty
    for emit, what in (("obj", "object file"), ("shared", "shared library")):
        master, slave = pty.openpty()
        r = subprocess.run([a.gradc, "compile", DIGITS, "--emit", emit, "-o", "-"], stdout=slave,
                           stderr=subprocess.PIPE, cwd=tmp)
        os.close(slave)
        os.close(master)
        check(r.returncode == 2 and r.stderr.decode() == f"gradc: error: -o - would write the {what} to the terminal: "
              "redirect standard output to a file or a pipe, or use --emit asm or llvm (see gradc compile --help)\n"
              and not os.path.exists(os.path.join(tmp, "-")),
              f"--emit {emit} -o - on a terminal is a bad flag: {r.stderr!r}")
    # A named CPU gets the kernels of its vector width, whatever the host has: the FMAs of
    # the matrix products on 512-bit registers for an AVX-512 CPU, 256-bit ones for AVX2.
    for cpu, wide, narrow in (("skylake-avx512", "zmm", "ymm"), ("x86-64-v3", "ymm", "zmm")):
        s = os.path.join(tmp, cpu + ".s")
        run([a.gradc, "compile", DIGITS, "--target", "x86_64-linux-gnu", "--cpu", cpu, "--emit", "asm", "-o", s])
        fmas = [l for l in open(s).read().splitlines() if "vfmadd" in l and "ps" in l]
        n_wide = sum(f"%{wide}" in l for l in fmas)
        n_narrow = sum(f"%{narrow}" in l for l in fmas)
        check(n_wide > 10 * max(n_narrow, 1), f"--cpu {cpu}: {n_wide} FMAs on {wide}, {n_narrow} on {narrow}")
    r = run([a.gradc, "compile", DIGITS, "-o", os.path.join(tmp, "no", "such", "dir.o")], ok=False)
    check(r.returncode == 1 and "error" in r.stderr, f"an unwritable output is an error: {r.stderr.strip()}")
    r = run([a.gradc, "compile", DIGITS, "--emit", "exe", "-o", os.path.join(tmp, "z.o")], ok=False)
    check(r.returncode != 0 and not os.path.exists(os.path.join(tmp, "z.o")), "--emit exe is refused")
    env = dict(os.environ, CC="/nonexistent/cc")
    r = run([a.gradc, "compile", DIGITS, "--emit", "shared", "-o", os.path.join(tmp, "w.so")], ok=False, env=env)
    check(r.returncode == 1 and "needs a linker" in r.stderr and not os.path.exists(os.path.join(tmp, "w.so"))
          and not [f for f in os.listdir(tmp) if ".tmp" in f],
          f"no linker: a clear error, no output: {r.stderr.strip()}")
    # $CC of several words, as make takes it (`ccache cc`, `gcc -m64`).
    env = dict(os.environ, CC="env cc")
    r = run([a.gradc, "compile", DIGITS, "--emit", "shared", "-o", os.path.join(tmp, "words.so")], ok=False, env=env)
    check(r.returncode == 0 and "shared object" in run(["file", os.path.join(tmp, "words.so")]).stdout,
          f"CC='env cc' links the shared library: {r.stderr.strip()}")


def types_block(text):
    s = text.index("/* --- begin model types")
    return text[s:text.index("/* --- end model types --- */", s)]


def rosenbrock_program(tmp, name, text):
    """Standard output of the C program `text`, linked with mode_header's rosenbrock_f32/model.o."""
    d = os.path.join(tmp, "rosenbrock_f32")
    src, exe = os.path.join(d, name + ".c"), os.path.join(d, name)
    with open(src, "w") as f:
        f.write(text)
    cc_link(src, exe, [d, RUNTIME_H], [os.path.join(d, "model.o")])
    return run([exe]).stdout


def mode_header(tmp):
    runtime_types = types_block(open(os.path.join(RUNTIME_H, "gradc_runtime.h")).read())
    models = sorted(f[:-5] for f in os.listdir(os.path.join(a.source, "examples")) if f.endswith(".grad"))
    for name in models:
        for dtype in ["f32", "f64"] if name in ("digits", "rosenbrock", "xor") else ["f32"]:
            d = os.path.join(tmp, f"{name}_{dtype}")
            os.mkdir(d)
            obj, h = os.path.join(d, "model.o"), os.path.join(d, "model.h")
            run([a.gradc, "compile", os.path.join(a.source, "examples", name + ".grad"), "--dtype", dtype,
                 "-o", obj, "--header", h])
            text = open(h).read()
            check(types_block(text) == runtime_types, f"{name} {dtype}: the header's types equal gradc_runtime.h's")
            src = os.path.join(d, "use.c")
            with open(src, "w") as f:
                f.write(f'#include "model.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
                        f"int main(void) {{\n  gradc_model m = gradc_{name}_model();\n"
                        f"  void *state = aligned_alloc(64, GRADC_{name.upper()}_STATE_BYTES);\n"
                        f"  m.init(state, 0);\n"
                        f'  printf("%s %d %d %d %lld\\n", m.name, m.f64, m.num_state, m.step.num_slots, (long long)m.state_bytes);\n'
                        f"  free(state);\n  return 0;\n}}\n")
            exe = os.path.join(d, "use")
            cc_link(src, exe, [d, RUNTIME_H], [obj])
            out = run([exe]).stdout.split()
            check(out[0] == name and out[1] == ("1" if dtype == "f64" else "0"),
                  f"{name} {dtype}: compiles as C11 -pedantic -Werror, links, runs: {' '.join(out)}")
            r = run(["g++", "-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c++", h],
                    ok=False)
            check(r.returncode == 0, f"{name} {dtype}: the header compiles as C++ {r.stderr[:300]}")
            r = run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", h], ok=False)
            check(r.returncode == 0, f"{name} {dtype}: the header alone compiles as C99 {r.stderr[:300]}")
            if shutil.which("clang"):  # which warns of the unused static inline functions of a main file
                r = run(["clang", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", h],
                        ok=False)
                check(r.returncode == 0, f"{name} {dtype}: the header alone compiles with clang {r.stderr[:300]}")
    # Two models in one program, from C and from C++: their headers share the type block
    # (one guard) and their objects define no symbol twice.
    src = os.path.join(tmp, "two.c")
    with open(src, "w") as f:
        f.write('#include "digits_f32/model.h"\n#include "xor_f32/model.h"\n#include "gradc_runtime.h"\n'
                "#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n"
                "  gradc_model a = gradc_digits_model(), b = gradc_xor_model();\n"
                "  void *sa = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES), *sb = aligned_alloc(64, GRADC_XOR_STATE_BYTES);\n"
                "  a.init(sa, 0);\n  b.init(sb, 0);\n"
                '  printf("%s %s\\n", a.name, b.name);\n  free(sa);\n  free(sb);\n  return 0;\n}\n')
    objs = [os.path.join(tmp, m + "_f32", "model.o") for m in ("digits", "xor")]
    exe = os.path.join(tmp, "two")
    cc_link(src, exe, [tmp, RUNTIME_H], objs)
    out = run([exe]).stdout.strip()
    check(out == "digits xor", f"two models' objects and headers in one C program: {out}")
    r = run([CXX, "-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", "-x", "c++", src, "-x", "none"] + objs
            + [f"-I{tmp}", f"-I{RUNTIME_H}", "-o", exe + "_cpp"] + SAN + SAN_LINK
            + [f"-L{a.runtime_dir}", "-lgradc_runtime", f"-Wl,-rpath,{a.runtime_dir}", "-lm"], ok=False)
    out = run([exe + "_cpp"], ok=False).stdout.strip() if r.returncode == 0 else r.stderr[:300]
    check(out == "digits xor", f"two models' objects and headers in one C++ program: {out}")
    # Names whose C identifiers collide: param `w_m` and Adam's state `w.m` (both `w_m`), an input
    # named like the enum's own NUM_SLOTS. Each gets its kind appended; the header compiles.
    d = os.path.join(tmp, "clash")
    os.mkdir(d)
    model, obj, h = os.path.join(d, "clash.grad"), os.path.join(d, "clash.o"), os.path.join(d, "clash.h")
    with open(model, "w") as f:
        f.write("dim B\ninput NUM_SLOTS: [B, 2]\nparam w: [2] = ones\nparam w_m: [2] = ones\n"
                "minimize mean(NUM_SLOTS @ (w * w_m)) with adam\n")
    run([a.gradc, "compile", model, "-o", obj, "--header", h])
    for std in ["c99", "c11"]:
        r = run(["cc", f"-std={std}", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", h], ok=False)
        check(r.returncode == 0, f"colliding names: the header compiles as {std} {r.stderr[:300]}")
    src = os.path.join(d, "use.c")
    with open(src, "w") as f:
        f.write('#include "clash.h"\n#include <stdio.h>\nint main(void) {\n'
                '  printf("%d %d %d %d %d\\n", GRADC_CLASH_STATE_w_m_param_OFFSET, GRADC_CLASH_STATE_w_m_state_OFFSET,\n'
                '         GRADC_CLASH_STEP_w_m_param, GRADC_CLASH_STEP_w_m_state, GRADC_CLASH_STEP_NUM_SLOTS_input);\n'
                "  return 0;\n}\n")
    exe = os.path.join(d, "use")
    cc_link(src, exe, [d, RUNTIME_H], [obj])
    out = run([exe]).stdout.split()
    check(out == ["64", "128", "2", "3", "0"], f"colliding names: the param's and the state's offsets and slots {out}")
    # A name with its kind appended can be another item's name: params `lr` and `lr_param`
    # beside the learning rate `lr` (both params were GRADC_CLASH2_STEP_lr_param), `t_hyper`
    # beside the step count `t`. A number follows the kind then.
    model, obj, h = os.path.join(d, "clash2.grad"), os.path.join(d, "clash2.o"), os.path.join(d, "clash2.h")
    with open(model, "w") as f:
        f.write("param lr = 1\nparam lr_param = 2\nparam lr_hyper = 3\nparam t = 4\nparam t_hyper = 5\n"
                "param t_hyper_2 = 6\nminimize (lr * lr_param * lr_hyper * t * t_hyper * t_hyper_2)^2\n")
    run([a.gradc, "compile", model, "-o", obj, "--header", h])
    r = run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", h], ok=False)
    check(r.returncode == 0, f"names like another's with its kind: the header compiles {r.stderr[:300]}")
    text = open(h).read()
    for enumerator in ("STEP_lr_param_2 = 0", "STEP_lr_param = 1", "STEP_lr_hyper = 2", "STEP_t_param = 3",
                       "STEP_t_hyper = 4", "STEP_t_hyper_2 = 5", "STEP_lr_hyper_2 = 6", "STEP_t_hyper_3 = 7"):
        check("GRADC_CLASH2_" + enumerator + "," in text, f"names like another's with its kind: {enumerator}")
    # A model named `runtime`: its header and gradc_runtime.h, included in either order, keep
    # their own include guards (the model's took GRADC_RUNTIME_H, and the second was skipped).
    d = os.path.join(tmp, "runtime_model")
    os.mkdir(d)
    with open(os.path.join(d, "runtime.grad"), "w") as f:
        f.write("param a = 1\nminimize square(a)\n")
    run([a.gradc, "compile", os.path.join(d, "runtime.grad"), "-o", os.path.join(d, "runtime.o"), "--header",
         os.path.join(d, "runtime.h")])
    for first, second in (("runtime.h", "gradc_runtime.h"), ("gradc_runtime.h", "runtime.h")):
        src = os.path.join(d, "main.c")
        with open(src, "w") as f:
            f.write(f'#include "{first}"\n#include "{second}"\nint main(void) {{\n'
                    "  gradc_model m = gradc_runtime_model();\n  gradc_train_options o = gradc_train_defaults(&m);\n"
                    "  return (int)o.epochs - 1;\n}\n")
        r = run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", f"-I{d}",
                 f"-I{RUNTIME_H}", src], ok=False)
        check(r.returncode == 0, f"a model named runtime: {first} then {second} compile {r.stderr[:300]}")
    # A model in a folder whose name ends in `*`: the path in the header's first comment holds
    # `*/`, which must not end the comment.
    d = os.path.join(tmp, "star*")
    os.mkdir(d)
    shutil.copy(os.path.join(a.source, "examples", "xor.grad"), d)
    h = os.path.join(tmp, "star.h")
    run([a.gradc, "compile", os.path.join(d, "xor.grad"), "-o", os.path.join(tmp, "star.o"), "--header", h])
    r = run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", h], ok=False)
    check(r.returncode == 0, f"a model path holding '*/': the header compiles {r.stderr[:300]}")
    # A model without symbolic dims or inputs (rosenbrock): the header's example passes no dims
    # array (a zero-length one would not compile) and reads no data; the step runs with NULL.
    text = open(os.path.join(tmp, "rosenbrock_f32", "model.h")).read()
    check("const int64_t *dims = NULL;" in text and "{rows}" not in text and "read_csv" not in text,
          "rosenbrock: the header's example has no dims array and no data file")
    out = rosenbrock_program(
        tmp, "null_dims",
        '#include "model.h"\n#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n'
        "  void *state = aligned_alloc(64, GRADC_ROSENBROCK_STATE_BYTES);\n"
        "  gradc_rosenbrock_init(state, 0);\n  const int64_t *dims = NULL;\n"
        "  void *work = aligned_alloc(64, (gradc_rosenbrock_step_work_size(dims) + 63) / 64 * 64 + 64);\n"
        "  float lr = 0.001f, t = 1, loss = 0;\n  void *args[GRADC_ROSENBROCK_STEP_NUM_SLOTS];\n"
        "  args[GRADC_ROSENBROCK_STEP_a] = (char *)state + GRADC_ROSENBROCK_STATE_a_OFFSET;\n"
        "  args[GRADC_ROSENBROCK_STEP_b] = (char *)state + GRADC_ROSENBROCK_STATE_b_OFFSET;\n"
        "  args[GRADC_ROSENBROCK_STEP_lr] = &lr;\n  args[GRADC_ROSENBROCK_STEP_t] = &t;\n"
        "  args[GRADC_ROSENBROCK_STEP_loss] = &loss;\n  gradc_rosenbrock_step(args, dims, work);\n"
        '  printf("%g\\n", loss);\n  free(work);\n  free(state);\n  return 0;\n}\n').strip()
    check(out == "12.5", f"rosenbrock: one step with dims NULL gives the loss at (-1.5, 2), 12.5: {out}")
    # Through the C API: a model without inputs is evaluated with no data set (one call; it
    # read a NULL data set), refuses one (whose single batch made each epoch one step), and a
    # function without its work-size function is refused (it ran with no work memory).
    one_csv = os.path.join(tmp, "rosenbrock_f32", "x.csv")
    with open(one_csv, "w") as f:
        f.write("x\n1\n2\n")
    out = rosenbrock_program(
        tmp, "capi",
        '#include "model.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
        "int main(void) {\n  gradc_model m = gradc_rosenbrock_model();\n"
        "  gradc_model nows = gradc_rosenbrock_model_from(gradc_rosenbrock_step, NULL, gradc_rosenbrock_eval,\n"
        "                                                 NULL, NULL, NULL, gradc_rosenbrock_init);\n"
        "  gradc_model other = m;\n  gradc_slot x = {\"x\", GRADC_SLOT_INPUT, 0, 1, {-1}, 0, -1};\n"
        "  gradc_dataset *d;\n  gradc_train_options o = gradc_train_defaults(&m);\n"
        "  void *state = aligned_alloc(64, GRADC_ROSENBROCK_STATE_BYTES);\n  double loss = 0;\n"
        "  other.step.slots = &x;\n  other.step.num_slots = 1;\n"
        f'  d = gradc_dataset_read_csv(&other, "{one_csv}");\n'
        "  int rc;\n  m.init(state, 0);\n  o.verbose = 0;\n"
        '  if (!d) return 1;\n'
        '  rc = gradc_evaluate(&m, state, NULL, 1, &loss, NULL);\n  printf("%d %g\\n", rc, loss);\n'
        '  rc = gradc_train(&m, state, NULL, d, NULL, &o);\n  printf("%d %s\\n", rc, gradc_last_error());\n'
        '  rc = gradc_train(&nows, state, NULL, NULL, NULL, &o);\n  printf("%d %s\\n", rc, gradc_last_error());\n'
        '  rc = gradc_evaluate(&nows, state, NULL, 1, &loss, NULL);\n'
        '  printf("%d %s\\n", rc, gradc_last_error());\n'
        "  gradc_dataset_free(d);\n  free(state);\n  return 0;\n}\n").splitlines()
    check(out == ["0 12.5",
                  f"-1 {one_csv}: error: the model rosenbrock has no inputs: it takes no data set to train on (pass NULL)",
                  "-1 rosenbrock: error: the model's step function has no work-size function "
                  "(gradc_NAME_step_work_size)",
                  "-1 rosenbrock: error: the model's eval function has no work-size function "
                  "(gradc_NAME_eval_work_size)"],
          f"rosenbrock through the C API: {out}")
    # The batch dim need not be dims[0]: with `dim T, B` it is dims[1]. The header says so, and
    # its example's dims lines, pasted into a program, give the step the rows (they set dims[0],
    # leaving B = 0 and the loss nan).
    d = os.path.join(tmp, "late_batch")
    os.mkdir(d)
    model, obj, h = os.path.join(d, "td.grad"), os.path.join(d, "td.o"), os.path.join(d, "td.h")
    with open(model, "w") as f:
        f.write("dim T, B\ninput x: [B, 2]\ninput y: [B, 1]\nparam w: [2, 1] = ones\n"
                "minimize mean(square(x @ w - y)) with sgd(lr = 0.01)\n")
    run([a.gradc, "compile", model, "-o", obj, "--header", h])
    text = open(h).read()
    check("#define GRADC_TD_DIM_T 0  /* not read */\n#define GRADC_TD_DIM_B 1  /* the batch size: rows per call */"
          in text and "(dims[GRADC_TD_DIM_B] = B: the rows of this call;" in text,
          "dim T, B: the header names dims[1] as the batch dim")
    start = text.index("(seed 0, as gradc train)")
    example = text[start:text.index("void *work = ", start)]
    dims_lines = "\n".join(l.lstrip(" *") for l in example.splitlines()[1:])
    src = os.path.join(d, "use.c")
    with open(src, "w") as f:
        f.write('#include "td.h"\n#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n'
                "  float x[4][2] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}}, y[4] = {1, 2, 3, 4}, w[2] = {1, 1};\n"
                "  float lr = 0.01f, t = 1, loss = -1;\n  int64_t rows = 4;\n  " + dims_lines + "\n"
                "  void *work = aligned_alloc(64, (gradc_td_step_work_size(dims) + 63) / 64 * 64 + 64);\n"
                "  void *args[GRADC_TD_STEP_NUM_SLOTS];\n"
                "  args[GRADC_TD_STEP_x] = x;\n  args[GRADC_TD_STEP_y] = y;\n  args[GRADC_TD_STEP_w] = w;\n"
                "  args[GRADC_TD_STEP_lr] = &lr;\n  args[GRADC_TD_STEP_t] = &t;\n  args[GRADC_TD_STEP_loss] = &loss;\n"
                '  gradc_td_step(args, dims, work);\n  printf("%g\\n", loss);\n  free(work);\n  return 0;\n}\n')
    exe = os.path.join(d, "use")
    cc_link(src, exe, [d, RUNTIME_H], [obj])
    out = run([exe]).stdout.strip()
    check(out == "53.5", f"dim T, B: the header's example dims give the step its 4 rows (loss 53.5): {out}")
    # Compiled with --threads N, the step itself calls libgradc_runtime (its thread pool): the
    # header says so where it names what to link (it named init only).
    h3 = os.path.join(d, "td3.h")
    run([a.gradc, "compile", model, "--threads", "3", "-o", os.path.join(d, "td3.o"), "--header", h3])
    text = open(h3).read()
    check("(and libgradc_runtime: for gradc_td_init(), and for the thread pool that splits large matrix\n"
          " * products into 3 parts, --threads 3; see docs/aot.md)" in text and "for gradc_td_init()" in open(h).read(),
          "--threads 3: the header says the step needs libgradc_runtime's thread pool")
    # A program that never calls init links without libgradc_runtime: the object puts each
    # function in its own section, so -Wl,--gc-sections drops init and its reference to the
    # runtime's gradc_init_param_f32 (which was left undefined: the link failed).
    alone = os.path.join(d, "use_alone")
    r = run([CC, "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror", src, obj, f"-I{d}", "-o", alone]
            + SAN + SAN_LINK + ["-Wl,--gc-sections", "-lm"], ok=False)
    out = run([alone]).stdout.strip() if r.returncode == 0 else r.stderr[-300:]
    check(out == "53.5" and "gradc_runtime" not in run(["ldd", alone]).stdout,
          f"a program that does not call init links the object and libm only (--gc-sections): {out}")
    # The initial state equals gradc train's: 0 steps leave the initial weights in the checkpoint.
    d = os.path.join(tmp, "digits_f32")
    init_ckpt = os.path.join(tmp, "init.safetensors")
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--steps", "0", "--seed", "7", "--save", init_ckpt])
    src = os.path.join(d, "init.c")
    with open(src, "w") as f:
        f.write('#include "model.h"\n#include "gradc_runtime.h"\n#include <stdlib.h>\n'
                "int main(int argc, char **argv) {\n  gradc_model m = gradc_digits_model();\n"
                "  gradc_counters c = {0, 0, 0, 7, 0};\n  void *state = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES);\n"
                "  (void)argc;\n  m.init(state, 7);\n  int rc = gradc_checkpoint_save(&m, state, &c, argv[1]) != 0;\n"
                "  free(state);\n  return rc;\n}\n")
    exe = os.path.join(d, "init")
    cc_link(src, exe, [d, RUNTIME_H], [os.path.join(d, "model.o")])
    mine = os.path.join(tmp, "init_c.safetensors")
    run([exe, mine])
    check(same_file(mine, init_ckpt), "init(state, 7) gives gradc train --seed 7's initial weights, byte for byte")
    # gradc_checkpoint_load fills the counters: what the struct held before is not read (an
    # uninitialised one, here all bits set, was refused: "optimizer_start -1 is not between 0
    # and step -1").
    ckpt = os.path.join(tmp, "three.safetensors")
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--steps", "3", "--seed", "7", "--save", ckpt])
    src = os.path.join(d, "load.c")
    with open(src, "w") as f:
        f.write('#include "model.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
                "#include <string.h>\nint main(int argc, char **argv) {\n  gradc_model m = gradc_digits_model();\n"
                "  gradc_counters c;\n  void *state = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES);\n  (void)argc;\n"
                "  memset(&c, 0xff, sizeof c);\n"
                '  if (gradc_checkpoint_load(&m, state, &c, argv[1]) != 0) { puts(gradc_last_error()); return 1; }\n'
                '  printf("%lld %lld %lld %llu %lld\\n", (long long)c.step, (long long)c.epoch, (long long)c.batch,\n'
                "         (unsigned long long)c.seed, (long long)c.optimizer_start);\n  free(state);\n  return 0;\n}\n")
    exe = os.path.join(d, "load")
    cc_link(src, exe, [d, RUNTIME_H], [os.path.join(d, "model.o")])
    r = run([exe, ckpt], ok=False)
    check(r.returncode == 0 and r.stdout.split() == ["3", "0", "3", "7", "0"],
          f"gradc_checkpoint_load into an uninitialised gradc_counters: {r.stdout.strip()}")
    # gradc_train resumed from a checkpoint taken mid-epoch keeps its data order, as `gradc
    # train --init` does: the same checkpoint, byte for byte (o.seed, 0 by default, shuffled
    # the rest of the epoch otherwise).
    mid, cli = os.path.join(tmp, "mid.safetensors"), os.path.join(tmp, "cli_resumed.safetensors")
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--steps", "17", "--seed", "5", "--save", mid])
    run([a.gradc, "train", DIGITS, "--data", TRAIN, "--init", mid, "--epochs", "1", "--save", cli])
    src = os.path.join(d, "resume.c")
    with open(src, "w") as f:
        f.write('#include "model.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
                "int main(int argc, char **argv) {\n  gradc_model m = gradc_digits_model();\n"
                "  gradc_train_options o = gradc_train_defaults(&m);\n  gradc_counters c;\n"
                "  void *state = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES);\n"
                "  gradc_dataset *d = gradc_dataset_read_csv(&m, argv[1]);\n  (void)argc;\n"
                '  if (!d || gradc_checkpoint_load(&m, state, &c, argv[2]) != 0) { puts(gradc_last_error()); return 1; }\n'
                "  o.epochs = 1;\n  o.verbose = 0;\n  o.save_path = argv[3];\n"
                '  if (gradc_train(&m, state, &c, d, NULL, &o) != 0) { puts(gradc_last_error()); return 1; }\n'
                "  gradc_dataset_free(d);\n  free(state);\n  return 0;\n}\n")
    exe = os.path.join(d, "resume")
    cc_link(src, exe, [d, RUNTIME_H], [os.path.join(d, "model.o")])
    mine = os.path.join(tmp, "c_resumed.safetensors")
    run([exe, TRAIN, mid, mine])
    check(same_file(mine, cli), "gradc_train from a mid-epoch checkpoint equals gradc train --init, byte for byte")
    # gradc_train keeps no figures of past epochs (nothing returns them): 200,000 more epochs of
    # xor's 4 rows leave the peak memory where 10,000 left it (it grew 36 MB: a record and a
    # discarded progress line an epoch).
    d = os.path.join(tmp, "xor_f32")
    src = os.path.join(d, "history.c")
    with open(src, "w") as f:
        f.write('#include "model.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
                "#include <sys/resource.h>\n"
                "static long peak(void) {\n  struct rusage u;\n  getrusage(RUSAGE_SELF, &u);\n  return u.ru_maxrss;\n}\n"
                "int main(int argc, char **argv) {\n  gradc_model m = gradc_xor_model();\n"
                "  gradc_train_options o = gradc_train_defaults(&m);\n  gradc_counters c = {0, 0, 0, 0, 0};\n"
                "  void *state = aligned_alloc(64, (GRADC_XOR_STATE_BYTES + 63) / 64 * 64);\n"
                "  gradc_dataset *d = gradc_dataset_read_csv(&m, argv[1]);\n  long before;\n  (void)argc;\n"
                "  if (!d) { puts(gradc_last_error()); return 1; }\n  m.init(state, 0);\n"
                "  o.verbose = 0;\n  o.epochs = 10000;\n"
                "  if (gradc_train(&m, state, &c, d, NULL, &o) != 0) { puts(gradc_last_error()); return 1; }\n"
                "  before = peak();\n  o.epochs = 200000;\n"
                "  if (gradc_train(&m, state, &c, d, NULL, &o) != 0) { puts(gradc_last_error()); return 1; }\n"
                '  printf("%ld\\n", peak() - before);\n  gradc_dataset_free(d);\n  free(state);\n  return 0;\n}\n')
    exe = os.path.join(d, "history")
    cc_link(src, exe, [d, RUNTIME_H], [os.path.join(d, "model.o")])
    out = run([exe, os.path.join(DATA, "xor.csv")], ok=False).stdout.strip()
    # (ASan's quarantine holds freed blocks: a sanitizer build's figure says nothing of this)
    check(bool(SAN) or (out.isdigit() and int(out) < 4000),
          f"gradc_train over 200,000 epochs: peak memory grew {out} KiB")
    # A float64 object trained through gradc_train on data that float32 cannot hold (0.1):
    # gradc_dataset_read_csv reads the values as doubles, as `gradc train --dtype f64` does, so
    # both save the same checkpoint (the values were read as floats and widened, 2e-9 off).
    d = os.path.join(tmp, "f64data")
    os.mkdir(d)
    model, data = os.path.join(d, "lin.grad"), os.path.join(d, "lin.csv")
    with open(model, "w") as f:
        f.write("dim B\ninput x: [B, 1]\nparam w: [1, 1] = ones\nminimize mean(x @ w) with sgd(lr = 0.1)\n")
    with open(data, "w") as f:
        f.write("x\n0.1\n0.7\n1.3\n")
    obj, h = os.path.join(d, "lin.o"), os.path.join(d, "lin.h")
    run([a.gradc, "compile", model, "--dtype", "f64", "-o", obj, "--header", h])
    src = os.path.join(d, "train.c")
    with open(src, "w") as f:
        f.write('#include "lin.h"\n#include "gradc_runtime.h"\n#include <stdio.h>\n#include <stdlib.h>\n'
                "int main(int argc, char **argv) {\n  gradc_model m = gradc_lin_model();\n"
                "  gradc_train_options o = gradc_train_defaults(&m);\n  gradc_counters c = {0, 0, 0, 0, 0};\n"
                "  void *state = aligned_alloc(64, GRADC_LIN_STATE_BYTES);\n"
                "  gradc_dataset *data = gradc_dataset_read_csv(&m, argv[1]);\n  int rc;\n  (void)argc;\n"
                "  if (!data) { puts(gradc_last_error()); return 1; }\n"
                "  o.epochs = 1;\n  o.save_path = argv[2];\n  m.init(state, 0);\n"
                "  rc = gradc_train(&m, state, &c, data, NULL, &o) != 0;\n"
                "  if (rc) puts(gradc_last_error());\n  gradc_dataset_free(data);\n  free(state);\n  return rc;\n}\n")
    exe = os.path.join(d, "train")
    cc_link(src, exe, [d, RUNTIME_H], [obj])
    mine, theirs = os.path.join(d, "c.safetensors"), os.path.join(d, "train.safetensors")
    run([exe, data, mine])
    run([a.gradc, "train", model, "--data", data, "--dtype", "f64", "--epochs", "1", "--save", theirs])
    check(same_file(mine, theirs), "--dtype f64: gradc_dataset_read_csv and gradc_train give gradc train's "
          "checkpoint, byte for byte, on data float32 cannot hold")


with tempfile.TemporaryDirectory() as tmp:
    {"embed": mode_embed, "shared": mode_shared, "install": mode_install, "cross": mode_cross,
     "header": mode_header}[a.mode](tmp)
if failures:
    sys.exit(f"{len(failures)} check(s) failed")
