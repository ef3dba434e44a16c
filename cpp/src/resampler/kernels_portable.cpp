// The resampler's kernels in plain C++, for any CPU (compiled with the baseline flags and
// -ffp-contract=off): the body in kernels_simd.hpp with a "register" of one sample, each
// multiply-add a multiply and an add.
#include <cstddef>

#include "kernels.hpp"
#include "kernels_simd.hpp"

namespace anunzi::detail {
namespace {

template <typename S>
struct OneLane {
  using Scalar = S;
  using Vec = S;
  static constexpr std::size_t kLanes = 1;
  static constexpr std::size_t kAccumulators = 4;
  static constexpr std::size_t kMaxRun = 8;
  static constexpr bool kHasPermute = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return S(0); }
  ANUNZI_KERNEL_INLINE static Vec load(const S* p) { return *p; }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const S* p) { return *p; }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return a * b + c; }
  ANUNZI_KERNEL_INLINE static void store(S* p, Vec a) { *p = a; }
  ANUNZI_KERNEL_INLINE static void storeu(S* p, Vec a) { *p = a; }
  ANUNZI_KERNEL_INLINE static S reduce(Vec v) { return v; }
};

}  // namespace

constexpr IsaKernels kPortableKernels = {kernels_of<OneLane<float>>(),
                                         kernels_of<OneLane<double>>()};

}  // namespace anunzi::detail
