// The resampler's kernels for AVX-512 (16 floats / 8 doubles per register): the body in
// kernels_simd.hpp, compiled with the AVX-512 F/BW/DQ/VL flags for this unit alone. Windows
// that start in one aligned block share its loads and are cut out with a two-source permute.
#include <immintrin.h>

#include <cstddef>

#include "kernels.hpp"
#include "kernels_simd.hpp"

namespace anunzi::detail {
namespace {

struct Avx512Float {
  using Scalar = float;
  using Vec = __m512;
  using Index = __m512i;
  static constexpr std::size_t kLanes = 16;
  static constexpr bool kHasCut = true;
  static constexpr bool kHasReduce8 = true;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm512_setzero_ps(); }
  ANUNZI_KERNEL_INLINE static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(float* p, Vec a) { _mm512_store_ps(p, a); }
  ANUNZI_KERNEL_INLINE static Index index(std::ptrdiff_t shift) {
    return _mm512_add_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(static_cast<int>(shift)));
  }
  ANUNZI_KERNEL_INLINE static Vec cut(Vec lo, Index idx, Vec hi) {
    return _mm512_permutex2var_ps(lo, idx, hi);
  }
  // The pairing of _mm512_reduce_add_ps (halves of 256, 128 bits, then 2 and 1 lanes apart),
  // written out because GCC 12's version warns about an uninitialised operand.
  ANUNZI_KERNEL_INLINE static float reduce(Vec a) {
    const __m512 s1 = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xEE));
    const __m512 s2 = _mm512_add_ps(s1, _mm512_shuffle_f32x4(s1, s1, 0x01));
    const __m512 s3 = _mm512_add_ps(s2, _mm512_permute_ps(s2, 0x4E));
    const __m512 s4 = _mm512_add_ps(s3, _mm512_permute_ps(s3, 0xB1));
    return _mm512_cvtss_f32(s4);
  }
  // Eight horizontal sums at once, with exactly the pairing of reduce() (halves of 256, then
  // 128 bits, then lanes 2 apart, then 1 apart), so each sum has the same bits as on its own.
  ANUNZI_KERNEL_INLINE static void reduce8(Vec a0, Vec a1, Vec a2, Vec a3, Vec a4, Vec a5,
                                           Vec a6, Vec a7, float* out) {
    const __m512 a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    // Step 1: lane l + lane l+8; two outputs per vector, [o.lo256 | o'.lo256] + [o.hi | o'.hi].
    __m512 p[4];
    for (int i = 0; i < 4; ++i) {
      const __m512 x = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44);  // q0 q1 | q0' q1'
      const __m512 y = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE);  // q2 q3 | q2' q3'
      p[i] = _mm512_add_ps(x, y);
    }
    // Step 2: lane l + lane l+4; four outputs per vector, one 128-bit quarter each.
    __m512 q[2];
    for (int i = 0; i < 2; ++i) {
      const __m512 x = _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0x88);  // q0 q2 | q0' q2'
      const __m512 y = _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0xDD);  // q1 q3 | q1' q3'
      q[i] = _mm512_add_ps(x, y);
    }
    // Quarter k of q[0] holds output k, of q[1] output 4 + k. Step 3: lanes 0,1 + lanes 2,3.
    const __m512 x3 = _mm512_shuffle_ps(q[0], q[1], 0x44);  // [c0 c1 c0' c1'] per quarter
    const __m512 y3 = _mm512_shuffle_ps(q[0], q[1], 0xEE);  // [c2 c3 c2' c3']
    const __m512 r = _mm512_add_ps(x3, y3);                 // [c0+c2, c1+c3, same for o+4]
    // Step 4: (c0+c2) + (c1+c3).
    const __m512 x4 = _mm512_shuffle_ps(r, r, 0x88);  // [r0 r2 r0 r2]
    const __m512 y4 = _mm512_shuffle_ps(r, r, 0xDD);  // [r1 r3 r1 r3]
    alignas(64) float t[16];
    _mm512_store_ps(t, _mm512_add_ps(x4, y4));
    for (int k = 0; k < 4; ++k) {
      out[k] = t[4 * k];
      out[4 + k] = t[4 * k + 1];
    }
  }
};

struct Avx512Double {
  using Scalar = double;
  using Vec = __m512d;
  using Index = __m512i;
  static constexpr std::size_t kLanes = 8;
  static constexpr bool kHasCut = true;
  static constexpr bool kHasReduce8 = false;
  ANUNZI_KERNEL_INLINE static Vec zero() { return _mm512_setzero_pd(); }
  ANUNZI_KERNEL_INLINE static Vec load(const double* p) { return _mm512_loadu_pd(p); }
  ANUNZI_KERNEL_INLINE static Vec broadcast(const double* p) { return _mm512_set1_pd(*p); }
  ANUNZI_KERNEL_INLINE static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_pd(a, b, c); }
  ANUNZI_KERNEL_INLINE static void store(double* p, Vec a) { _mm512_store_pd(p, a); }
  ANUNZI_KERNEL_INLINE static Index index(std::ptrdiff_t shift) {
    return _mm512_add_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
                            _mm512_set1_epi64(static_cast<long long>(shift)));
  }
  ANUNZI_KERNEL_INLINE static Vec cut(Vec lo, Index idx, Vec hi) {
    return _mm512_permutex2var_pd(lo, idx, hi);
  }
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
