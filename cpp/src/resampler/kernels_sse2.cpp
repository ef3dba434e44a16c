// The resampler's kernels for SSE2, the x86-64 baseline: 4 floats / 2 doubles per register,
// four accumulators per output, multiplies and adds apart (no FMA on this path).
#include <emmintrin.h>

#include <cstddef>

#include "kernels.hpp"

namespace anunzi::detail {
namespace {

float dot_sse2_f(const float* c, const float* x, std::size_t k) {
  __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps(), a2 = _mm_setzero_ps(),
         a3 = _mm_setzero_ps();
  for (std::size_t i = 0; i < k; i += 16) {
    a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(c + i), _mm_loadu_ps(x + i)));
    a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(c + i + 4), _mm_loadu_ps(x + i + 4)));
    a2 = _mm_add_ps(a2, _mm_mul_ps(_mm_loadu_ps(c + i + 8), _mm_loadu_ps(x + i + 8)));
    a3 = _mm_add_ps(a3, _mm_mul_ps(_mm_loadu_ps(c + i + 12), _mm_loadu_ps(x + i + 12)));
  }
  __m128 s = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

double dot_sse2_d(const double* c, const double* x, std::size_t k) {
  __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd(), a2 = _mm_setzero_pd(),
          a3 = _mm_setzero_pd();
  for (std::size_t i = 0; i < k; i += 8) {
    a0 = _mm_add_pd(a0, _mm_mul_pd(_mm_loadu_pd(c + i), _mm_loadu_pd(x + i)));
    a1 = _mm_add_pd(a1, _mm_mul_pd(_mm_loadu_pd(c + i + 2), _mm_loadu_pd(x + i + 2)));
    a2 = _mm_add_pd(a2, _mm_mul_pd(_mm_loadu_pd(c + i + 4), _mm_loadu_pd(x + i + 4)));
    a3 = _mm_add_pd(a3, _mm_mul_pd(_mm_loadu_pd(c + i + 6), _mm_loadu_pd(x + i + 6)));
  }
  __m128d s = _mm_add_pd(_mm_add_pd(a0, a1), _mm_add_pd(a2, a3));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

}  // namespace

constexpr IsaKernels kSse2Kernels = {
    {group_of_dots<float, dot_sse2_f>, nullptr},
    {group_of_dots<double, dot_sse2_d>, nullptr},
};

}  // namespace anunzi::detail
