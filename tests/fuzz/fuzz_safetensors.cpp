// libFuzzer target: the safetensors reader (runtime/Safetensors.h) on arbitrary bytes. A
// UserError is the expected answer to a malformed file; a crash, a sanitizer report, another
// exception or a hang is a finding. A file that reads is written back and read again, and
// must give the same tensors and metadata (bit for bit).
//
//   build-fuzz/tests/fuzz_safetensors -max_total_time=3600 tests/fuzz/corpus_safetensors
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include "runtime/Safetensors.h"
#include "support/Diagnostics.h"

namespace {

std::string tempFile(const char *what) {
  // In memory where there is a tmpfs: the file is written for every input.
  std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/gradc_fuzz_" + std::string(what) + "." + std::to_string(::getpid()) + ".safetensors";
}

bool same(const gradc::rt::TensorFile &a, const gradc::rt::TensorFile &b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const gradc::rt::NamedTensor &t : a.tensors) {
    const gradc::rt::NamedTensor *u = b.find(t.name);
    if (!u || u->shape != t.shape || u->data.size() != t.data.size()) return false;
    if (!t.data.empty() && std::memcmp(u->data.data(), t.data.data(), t.data.size() * sizeof(float)) != 0)
      return false;
    if (u->f64 != t.f64 || u->data64.size() != t.data64.size()) return false;
    if (!t.data64.empty() &&
        std::memcmp(u->data64.data(), t.data64.data(), t.data64.size() * sizeof(double)) != 0)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string in = tempFile("in"), out = tempFile("out");
  FILE *f = std::fopen(in.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  gradc::rt::TensorFile file;
  try {
    file = gradc::rt::readSafetensors(in);
  } catch (const gradc::UserError &) {
    return 0;
  }
  gradc::rt::writeSafetensors(out, file);
  if (!same(file, gradc::rt::readSafetensors(out))) std::abort();
  return 0;
}
