// A heap buffer aligned to 64 bytes (a cache line, an AVX-512 vector) that holds float,
// double or int32 elements: the storage of params, optimiser states, batches, results and
// the step's work memory. Allocated once; never resized while a kernel uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace gradc::rt {

class Buffer {
public:
  Buffer() = default;
  explicit Buffer(size_t bytes) { allocate(bytes); }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  Buffer &operator=(Buffer &&o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  /// Replaces the contents by `bytes` zero bytes.
  void allocate(size_t bytes) {
    release();
    size_t n = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    data_ = static_cast<std::byte *>(::operator new(n, std::align_val_t(64)));
    std::memset(data_, 0, n);
    bytes_ = bytes;
  }
  void *data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T> T *as() const { return reinterpret_cast<T *>(data_); }

private:
  void release() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
    bytes_ = 0;
  }
  std::byte *data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace gradc::rt
