// The resampler's kernels for SSE2, the x86-64 baseline (4 floats / 2 doubles per register):
// the body in kernels_simd.hpp, with each multiply-add a multiply and an add (no FMA here).
#include <emmintrin.h>

#include <cstddef>

#include "kernels.hpp"
#include "kernels_simd.hpp"

namespace anunzi::detail {
namespace {

struct Sse2Float {
  using Scalar = float;
  using Vec = __m128;
  static constexpr std::size_t kLanes = 4;
  static constexpr std::size_t kAccumulators = 4;
  static constexpr std::size_t kMaxRun = 8;
  static constexpr bool kHasPermute = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm_setzero_ps(); }
  ANUNZI_KERNEL_INLINE static Vec load(const float* p) { return _mm_loadu_ps(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const float* p) { return _mm_set1_ps(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) {
    return _mm_add_ps(_mm_mul_ps(a, b), c);
  }
  ANUNZI_KERNEL_INLINE static void store(float* p, Vec a) { _mm_store_ps(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(float* p, Vec a) { _mm_storeu_ps(p, a); }
  ANUNZI_KERNEL_INLINE static float reduce(Vec v) {
    __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

struct Sse2Double {
  using Scalar = double;
  using Vec = __m128d;
  static constexpr std::size_t kLanes = 2;
  static constexpr std::size_t kAccumulators = 4;
  static constexpr std::size_t kMaxRun = 8;
  static constexpr bool kHasPermute = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm_setzero_pd(); }
  ANUNZI_KERNEL_INLINE static Vec load(const double* p) { return _mm_loadu_pd(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const double* p) { return _mm_set1_pd(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) {
    return _mm_add_pd(_mm_mul_pd(a, b), c);
  }
  ANUNZI_KERNEL_INLINE static void store(double* p, Vec a) { _mm_store_pd(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(double* p, Vec a) { _mm_storeu_pd(p, a); }
  ANUNZI_KERNEL_INLINE static double reduce(Vec v) {
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
  }
};

}  // namespace

constexpr IsaKernels kSse2Kernels = {kernels_of<Sse2Float>(), kernels_of<Sse2Double>()};

}  // namespace anunzi::detail
