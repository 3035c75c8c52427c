// safetensors files (docs/language.md, "Weights and checkpoints"): weights, gradients and checkpoints.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"NAME": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the raw little-endian data. Reading validates everything
// (sizes, offsets, dtypes, overlapping or out-of-range data, bytes that no tensor covers, a
// name given twice, as the reference implementation refuses them) and rejects a malformed file with
// one UserError `FILE: error: ...`. Tensors of dtypes other than F32 and F64 (a PyTorch
// state dict's I64 counters) are validated but not read: an extra one is ignored. Writing is atomic: a temporary file in the same folder,
// fsync, rename; a crash mid-write leaves the old file whole.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace gradc::rt {

/// A tensor of the file. `data` always holds its values as float; an F64 tensor (`f64`) also
/// holds them exactly in `data64`, and is written as F64 (from `data64`).
struct NamedTensor {
  NamedTensor() = default;
  NamedTensor(std::string name, std::vector<int64_t> shape, std::vector<float> data)
      : name(std::move(name)), shape(std::move(shape)), data(std::move(data)) {}

  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
  bool f64 = false;
  std::vector<double> data64;
};

struct TensorFile {
  std::vector<NamedTensor> tensors;  // the F32 and F64 tensors
  std::map<std::string, std::string> metadata;
  /// Tensors of the other safetensors dtypes (I64, F16, BOOL, ...), name -> dtype: checked
  /// like the others but not read. They are ignored unless a param or state needs one.
  std::map<std::string, std::string> otherDtypes;
  const NamedTensor *find(const std::string &name) const;
  /// Throws `PATH: error: tensor 'NAME' has dtype I64; ...` when `name` is in otherDtypes.
  void checkReadable(const std::string &path, const std::string &name) const;
  /// The note for an error about a tensor that does not fit the model, when the file is a
  /// gradc checkpoint of another model (its `gradc.model_hash` is not `modelHash`):
  /// ` (the checkpoint was written for another model: model hash H, this model's is H2)`;
  /// empty otherwise (or when `modelHash` is empty).
  std::string otherModelNote(const std::string &modelHash) const;
  /// The tensor of the model's param `name`, which has shape `shape`: `PATH: error: ...` when
  /// the file has none, one of another shape or one of a dtype gradc does not read, ending in
  /// otherModelNote(modelHash). The one check of every command that reads params (train
  /// --init, eval and predict through TrainState::load; grad and gradcheck).
  const NamedTensor &param(const std::string &path, const std::string &name, const std::vector<int64_t> &shape,
                           const std::string &modelHash) const;
  /// Warns (on stderr) that the file, whose tensors fit the model, is a checkpoint of another
  /// version of it (its `gradc.model_hash` is not `modelHash`).
  void warnIfOtherModel(const std::string &path, const std::string &modelHash) const;
};

/// The reserved name under which a float64 run stores the exact F64 values of its F32 tensor
/// `name` (a param or an optimiser state): `NAME.f64` (`W1.f64`, `W1.m.f64`). A param name has no
/// '.', and an optimiser state is `PARAM.SUFFIX` with a suffix other than `f64`, so it names no
/// param or state.
std::string exactCopyName(const std::string &name);
/// The exact copy of the F32 tensor `t` in `file`: the tensor `exactCopyName(t.name)` when it is
/// F64, has t's shape and rounds to t's values (so it is not stale: a tool that rewrote `t` and
/// left the copy makes it ignored); otherwise nullptr.
const NamedTensor *exactCopy(const TensorFile &file, const NamedTensor &t);

/// A tensor shape as the error messages print it: `[2, 8]`, `[]`.
std::string shapeText(const std::vector<int64_t> &shape);

TensorFile readSafetensors(const std::string &path);
/// The bytes of `file` in the safetensors format, as writeSafetensors writes them.
std::string safetensorsBytes(const TensorFile &file);
void writeSafetensors(const std::string &path, const TensorFile &file);

}  // namespace gradc::rt
