// The resampler's kernels for AVX-512 (16 floats / 8 doubles per register): the body in
// kernels_simd.hpp, compiled with the AVX-512 F/BW/DQ/VL flags for this unit alone. Thirty-two
// registers: twelve output vectors at a time beside up to twelve broadcast coefficients.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.hpp"
#include "kernels_simd.hpp"

namespace anunzi::detail {
namespace {

struct Avx512Float {
  using Scalar = float;
  using Vec = __m512;
  static constexpr std::size_t kLanes = 16;
  static constexpr std::size_t kAccumulators = 12;
  static constexpr std::size_t kMaxRun = 12;
  static constexpr bool kHasPermute = true;
  using IndexScalar = std::int32_t;
  ANUNZI_KERNEL_INLINE static __m512i load_index(const std::int32_t* p) {
    return _mm512_loadu_si512(p);
  }
  ANUNZI_KERNEL_INLINE static Vec permute2(Vec lo, __m512i idx, Vec hi) {
    return _mm512_permutex2var_ps(lo, idx, hi);
  }
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm512_setzero_ps(); }
  ANUNZI_KERNEL_INLINE static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(float* p, Vec a) { _mm512_store_ps(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(float* p, Vec a) { _mm512_storeu_ps(p, a); }
  // The pairing of _mm512_reduce_add_ps (halves of 256, 128 bits, then 2 and 1 lanes apart),
  // written out because GCC 12's version warns about an uninitialised operand.
  ANUNZI_KERNEL_INLINE static float reduce(Vec a) {
    const __m512 s1 = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xEE));
    const __m512 s2 = _mm512_add_ps(s1, _mm512_shuffle_f32x4(s1, s1, 0x01));
    const __m512 s3 = _mm512_add_ps(s2, _mm512_permute_ps(s2, 0x4E));
    const __m512 s4 = _mm512_add_ps(s3, _mm512_permute_ps(s3, 0xB1));
    return _mm512_cvtss_f32(s4);
  }
};

struct Avx512Double {
  using Scalar = double;
  using Vec = __m512d;
  static constexpr std::size_t kLanes = 8;
  static constexpr std::size_t kAccumulators = 12;
  static constexpr std::size_t kMaxRun = 12;
  static constexpr bool kHasPermute = true;
  using IndexScalar = std::int64_t;
  ANUNZI_KERNEL_INLINE static __m512i load_index(const std::int64_t* p) {
    return _mm512_loadu_si512(p);
  }
  ANUNZI_KERNEL_INLINE static Vec permute2(Vec lo, __m512i idx, Vec hi) {
    return _mm512_permutex2var_pd(lo, idx, hi);
  }
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm512_setzero_pd(); }
  ANUNZI_KERNEL_INLINE static Vec load(const double* p) { return _mm512_loadu_pd(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const double* p) { return _mm512_set1_pd(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_pd(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(double* p, Vec a) { _mm512_store_pd(p, a); }
  ANUNZI_KERNEL_INLINE static void storeu(double* p, Vec a) { _mm512_storeu_pd(p, a); }
  ANUNZI_KERNEL_INLINE static double reduce(Vec a) {
    const __m512d s1 = _mm512_add_pd(a, _mm512_shuffle_f64x2(a, a, 0xEE));
    const __m512d s2 = _mm512_add_pd(s1, _mm512_shuffle_f64x2(s1, s1, 0x01));
    const __m512d s3 = _mm512_add_pd(s2, _mm512_permute_pd(s2, 0x55));
    return _mm512_cvtsd_f64(s3);
  }
};

}  // namespace

constexpr IsaKernels kAvx512Kernels = {kernels_of<Avx512Float>(), kernels_of<Avx512Double>()};

}  // namespace anunzi::detail
