// The resampler's kernels for AVX2 + FMA (8 floats / 4 doubles per register): the body in
// kernels_simd.hpp, compiled with -mavx2 -mfma for this unit alone. Sixteen registers: four
// output vectors at a time beside up to eight broadcast coefficients.
#include <immintrin.h>

#include <cstddef>

#include "kernels.hpp"
#include "kernels_simd.hpp"

namespace anunzi::detail {
namespace {

struct Avx2Float {
  using Scalar = float;
  using Vec = __m256;
  static constexpr std::size_t kLanes = 8;
  static constexpr std::size_t kAccumulators = 4;
  static constexpr std::size_t kMaxRun = 8;
  static constexpr bool kHasPermute = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm256_setzero_ps(); }
  ANUNZI_KERNEL_INLINE static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(float* p, Vec a) { _mm256_store_ps(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(float* p, Vec a) { _mm256_storeu_ps(p, a); }
  ANUNZI_KERNEL_INLINE static float reduce(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

struct Avx2Double {
  using Scalar = double;
  using Vec = __m256d;
  static constexpr std::size_t kLanes = 4;
  static constexpr std::size_t kAccumulators = 4;
  static constexpr std::size_t kMaxRun = 8;
  static constexpr bool kHasPermute = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm256_setzero_pd(); }
  ANUNZI_KERNEL_INLINE static Vec load(const double* p) { return _mm256_loadu_pd(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_pd(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(double* p, Vec a) { _mm256_store_pd(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(double* p, Vec a) { _mm256_storeu_pd(p, a); }
  ANUNZI_KERNEL_INLINE static double reduce(Vec v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};

}  // namespace

constexpr IsaKernels kAvx2Kernels = {kernels_of<Avx2Float>(), kernels_of<Avx2Double>()};

}  // namespace anunzi::detail
