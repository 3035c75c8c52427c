// Mini-batches (docs/language.md, "Command line"): the order of the rows in each epoch, and the
// gathering of a batch's rows of every input into contiguous buffers that a kernel reads.
//
// The order of epoch e is a Fisher–Yates shuffle driven by the stream kShuffleStream + e of
// the seed (Init.h): it depends on (seed, epoch) only, so the same seed gives the same
// batches on every platform, and a resumed run can recompute any epoch's order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/Buffer.h"
#include "runtime/Csv.h"

namespace gradc::rt {

/// The rows 0..rows-1 in the order of epoch `epoch` (unshuffled when !shuffle).
std::vector<int64_t> epochOrder(int64_t rows, uint64_t seed, int64_t epoch, bool shuffle);

/// Batches per epoch: the last, smaller batch counts unless dropLast.
int64_t batchCount(int64_t rows, int64_t batchSize, bool dropLast);

/// Gathers batches of a data set. Buffers hold batchSize rows of each input: float or
/// double (as `f64`) for float inputs, int32 for labels. Allocated once.
class Batcher {
public:
  Batcher(const Dataset &ds, int64_t batchSize, bool f64);
  /// Fills the buffers with rows order[batch * batchSize ...] and returns the row count.
  int64_t gather(const std::vector<int64_t> &order, int64_t batch);
  /// The buffer of input `name`, or nullptr when the data set has no such input.
  void *buffer(const std::string &name) const;
  int64_t batchSize() const { return batchSize_; }
  const Dataset &data() const { return ds_; }

private:
  const Dataset &ds_;
  int64_t batchSize_;
  bool f64_;
  std::vector<Buffer> buffers_;
};

}  // namespace gradc::rt
