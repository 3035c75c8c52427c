// A heap buffer aligned to 64 bytes (a cache line, an AVX-512 vector) that holds float,
// double or int32 elements: the storage of params, optimiser states, batches, results and
// the step's work memory. Allocated once; never resized while a kernel uses it.
//
// On Linux a buffer of 2 MiB or more is aligned to 2 MiB and asked for transparent huge pages
// (madvise MADV_HUGEPAGE, which the default THP setting `madvise` honours) before it is first
// touched: the optimiser's update streams the params and their states, tens of MB a step for
// a large model, and on 4 KiB pages it misses the TLB every 64 cache lines (medium's Adam
// step: up to 10% faster when the host's memory is busy, no slower otherwise;
// docs/performance.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace gradc::rt {

class Buffer {
public:
  Buffer() = default;
  explicit Buffer(size_t bytes) { allocate(bytes); }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept
      : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), align_(std::exchange(o.align_, 64)) {}
  Buffer &operator=(Buffer &&o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      align_ = std::exchange(o.align_, 64);
    }
    return *this;
  }
  ~Buffer() { release(); }

  /// Replaces the contents by `bytes` zero bytes.
  void allocate(size_t bytes) {
    release();
    size_t n = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    align_ = 64;
#ifdef __linux__
    if (n >= kHuge) align_ = kHuge;  // (the size is not rounded up: a partial last 2 MiB stays on small pages)
#endif
    data_ = static_cast<std::byte *>(::operator new(n, std::align_val_t(align_)));
#ifdef __linux__
    if (align_ == kHuge) ::madvise(data_, n, MADV_HUGEPAGE);
#endif
    std::memset(data_, 0, n);
    bytes_ = bytes;
  }
  void *data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T> T *as() const { return reinterpret_cast<T *>(data_); }

private:
  void release() {
    if (data_) ::operator delete(data_, std::align_val_t(align_));
    data_ = nullptr;
    bytes_ = 0;
  }
  static constexpr size_t kHuge = size_t(2) << 20;
  std::byte *data_ = nullptr;
  size_t bytes_ = 0;
  size_t align_ = 64;
};

}  // namespace gradc::rt
