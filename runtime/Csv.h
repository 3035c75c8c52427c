// The CSV reader (docs/language.md, "Data"): fast, exact (each value parses to the nearest
// float) and strict (every malformed row, cell or label is a UserError naming file, line and
// column).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gradc::rt {

/// What one model input takes from each row.
struct InputSpec {
  std::string name;
  bool isInt = false;   // int[B] labels: one whole number per row
  int64_t width = 1;    // columns per sample (product of the non-batch dims)
  int64_t classes = 0;  // int inputs: labels must lie in [0, classes) when classes > 0
};

/// One input's data for all rows, row-major: rows x width values.
struct Column {
  std::string name;  // the InputSpec's name
  bool isInt = false;
  int64_t width = 1;
  std::vector<float> f;    // float inputs
  std::vector<double> d;   // float inputs read for a float64 run (readCsv's `f64`), instead of f
  std::vector<int32_t> i;  // int inputs
};

struct Dataset {
  std::string path;
  int64_t rows = 0;
  std::vector<Column> inputs;  // one per InputSpec, same order
  /// The file's line (from 1) of each row, for messages about a row (readCsv; empty for data
  /// made otherwise).
  std::vector<int32_t> lines;
};

/// Reads a CSV file for these inputs. Throws UserError (`FILE:LINE:COL: error: ...`, or
/// `FILE: error: ...` for an empty or unreadable file). With `f64` the float values are read
/// as doubles (each to the nearest double) into Column::d, as a float64 run takes them.
Dataset readCsv(const std::string &path, const std::vector<InputSpec> &specs, bool f64 = false);

}  // namespace gradc::rt
