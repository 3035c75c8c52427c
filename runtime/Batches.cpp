// Epoch order and batch gathering (see Batches.h).
#include "runtime/Batches.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/Init.h"

namespace gradc::rt {

std::vector<int64_t> epochOrder(int64_t rows, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), int64_t(0));
  if (!shuffle) return order;
  Rng rng(seed, kShuffleStream + static_cast<uint64_t>(epoch));
  for (int64_t i = rows - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

int64_t batchCount(int64_t rows, int64_t batchSize, bool dropLast) {
  // Rounded up without rows + batchSize - 1, which overflows for rows near INT64_MAX.
  return rows / batchSize + (!dropLast && rows % batchSize != 0 ? 1 : 0);
}

Batcher::Batcher(const Dataset &ds, int64_t batchSize, bool f64)
    : ds_(ds), batchSize_(batchSize), f64_(f64) {
  for (const Column &c : ds.inputs) {
    size_t elem = c.isInt ? sizeof(int32_t) : f64 ? sizeof(double) : sizeof(float);
    buffers_.emplace_back(static_cast<size_t>(batchSize * c.width) * elem);
  }
}

int64_t Batcher::gather(const std::vector<int64_t> &order, int64_t batch) {
  int64_t begin = batch * batchSize_;
  int64_t n = std::min<int64_t>(batchSize_, static_cast<int64_t>(order.size()) - begin);
  for (size_t k = 0; k < ds_.inputs.size(); ++k) {
    const Column &c = ds_.inputs[k];
    size_t w = static_cast<size_t>(c.width);
    for (int64_t r = 0; r < n; ++r) {
      size_t src = static_cast<size_t>(order[static_cast<size_t>(begin + r)]) * w;
      size_t dst = static_cast<size_t>(r) * w;
      if (c.isInt) {
        std::memcpy(buffers_[k].as<int32_t>() + dst, c.i.data() + src, w * sizeof(int32_t));
      } else if (!f64_) {
        std::memcpy(buffers_[k].as<float>() + dst, c.f.data() + src, w * sizeof(float));
      } else {
        double *out = buffers_[k].as<double>() + dst;
        if (!c.d.empty()) std::memcpy(out, c.d.data() + src, w * sizeof(double));
        else for (size_t j = 0; j < w; ++j) out[j] = c.f[src + j];
      }
    }
  }
  return n;
}

void *Batcher::buffer(const std::string &name) const {
  for (size_t k = 0; k < ds_.inputs.size(); ++k)
    if (ds_.inputs[k].name == name) return buffers_[k].data();
  return nullptr;
}

}  // namespace gradc::rt
