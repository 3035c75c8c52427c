// libFuzzer target: the CSV reader of docs/language.md, "Data" (runtime/Csv.h) on arbitrary
// bytes. The first byte chooses the layout the file is read for (how many inputs, their widths,
// int labels with or without a class count); the rest is the file. A UserError is the expected
// answer to bad input; a crash, a sanitizer report, another exception or a hang is a finding. A
// file that reads must hold exactly rows x width values per input, and labels in range.
//
//   build-fuzz/tests/fuzz_csv -max_total_time=3600 tests/fuzz/corpus_csv
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "runtime/Csv.h"
#include "support/Diagnostics.h"

namespace {

std::string tempFile() {
  // In memory where there is a tmpfs: the file is written for every input.
  std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/gradc_fuzz_csv." + std::to_string(::getpid()) + ".csv";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t layout = data[0];
  std::vector<gradc::rt::InputSpec> specs;
  specs.push_back({"x", false, 1 + (layout & 3), 0});
  if (layout & 4) specs.push_back({"z", false, 1 + ((layout >> 3) & 1), 0});
  if (layout & 16) specs.push_back({"y", true, 1, (layout & 32) ? 3 : 0});
  else if (layout & 64) specs.push_back({"y", false, 1, 0});
  static const std::string path = tempFile();
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data + 1, 1, size - 1, f);
  std::fclose(f);
  try {
    gradc::rt::Dataset ds = gradc::rt::readCsv(path, specs);
    if (ds.rows <= 0 || ds.inputs.size() != specs.size()) std::abort();
    for (size_t i = 0; i < specs.size(); ++i) {
      const gradc::rt::Column &c = ds.inputs[i];
      size_t want = static_cast<size_t>(ds.rows * specs[i].width);
      if ((c.isInt ? c.i.size() : c.f.size()) != want) std::abort();
      if (c.isInt && specs[i].classes > 0)
        for (int32_t v : c.i)
          if (v < 0 || v >= specs[i].classes) std::abort();
    }
  } catch (const gradc::UserError &) {
  }
  return 0;
}
