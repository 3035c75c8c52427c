#include "runtime/Kernel.h"

namespace gradc::rt {

int64_t Slot::elements(const int64_t *dims) const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d >= 0 ? d : dims[-1 - d];
  return n;
}

int Signature::find(SlotKind kind, const std::string &name) const {
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].kind == kind && slots[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace gradc::rt
