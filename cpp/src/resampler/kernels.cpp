// The dispatch to one ISA's kernels (compiled for the baseline, like all code that runs before
// an ISA is chosen).
#include "kernels.hpp"

namespace anunzi::detail {
namespace {

const IsaKernels& table_for(Isa isa) {
  switch (isa) {
#if ANUNZI_X86_KERNELS
    case Isa::kSse2:
      return kSse2Kernels;
    case Isa::kAvx2:
      return kAvx2Kernels;
    case Isa::kAvx512:
      return kAvx512Kernels;
#endif
    default:
      return kPortableKernels;
  }
}

}  // namespace

template <>
Kernels<float> kernels_for<float>(Isa isa) {
  return table_for(isa).f32;
}

template <>
Kernels<double> kernels_for<double>(Isa isa) {
  return table_for(isa).f64;
}

}  // namespace anunzi::detail
