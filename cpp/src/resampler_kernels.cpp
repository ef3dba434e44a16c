// Dot-product kernels of the resampler, one variant per instruction set.
//
// The wider variants are compiled with per-function target attributes, never -march, so the
// library runs on any x86-64 and picks its path at run time. Each variant has a fixed summation
// order, so a given path gives the same bits for the same taps and samples wherever they sit in
// memory; different paths may differ in the last bits.
#include "resampler_kernels.hpp"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ANUNZI_X86 1
#else
#define ANUNZI_X86 0
#endif

namespace anunzi::detail {
namespace {

// Eight independent lanes keep the portable path's order fixed and let the compiler pipeline.
template <typename S>
S dot_portable(const S* c, const S* x, std::size_t k) {
  S acc[8] = {};
  for (std::size_t i = 0; i < k; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) acc[j] += c[i + j] * x[i + j];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Groups on the narrower paths are plain loops over the single-output kernel.
template <typename S, S (*Dot)(const S*, const S*, std::size_t)>
void group_from(const S* const* rows, const std::uint32_t* shifts, const S* x, std::size_t k,
                std::size_t g, S* out) {
  for (std::size_t o = 0; o < g; ++o) out[o] = Dot(rows[o], x + shifts[o], k);
}

template <typename S>
void dot4_portable(const S* c, std::size_t row_stride, const S* x, std::size_t k, S* out) {
  for (std::size_t r = 0; r < 4; ++r) out[r] = dot_portable(c + r * row_stride, x, k);
}

#if ANUNZI_X86
// ---- SSE2: 4 floats / 2 doubles per register, four accumulators.
__attribute__((target("sse2"))) float dot_sse2_f(const float* c, const float* x, std::size_t k) {
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

__attribute__((target("sse2"))) double dot_sse2_d(const double* c, const double* x,
                                                  std::size_t k) {
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

// ---- AVX2 + FMA: 8 floats / 4 doubles per register.
__attribute__((target("avx2,fma"))) float hsum256_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) double hsum256_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

__attribute__((target("avx2,fma"))) float dot_avx2_f(const float* c, const float* x,
                                                     std::size_t k) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
         a3 = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 32 <= k; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  if (i < k) {  // k is a multiple of 16
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  return hsum256_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

__attribute__((target("avx2,fma"))) double dot_avx2_d(const double* c, const double* x,
                                                      std::size_t k) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(),
          a3 = _mm256_setzero_pd();
  std::size_t i = 0;
  for (; i + 16 <= k; i += 16) {
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i), _mm256_loadu_pd(x + i), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i + 4), _mm256_loadu_pd(x + i + 4), a1);
    a2 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i + 8), _mm256_loadu_pd(x + i + 8), a2);
    a3 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i + 12), _mm256_loadu_pd(x + i + 12), a3);
  }
  if (i < k) {  // k is a multiple of 8
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i), _mm256_loadu_pd(x + i), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(c + i + 4), _mm256_loadu_pd(x + i + 4), a1);
  }
  return hsum256_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
}

// ---- AVX-512F: 16 floats / 8 doubles per register.
__attribute__((target("avx512f"))) float dot_avx512_f(const float* c, const float* x,
                                                      std::size_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
         a3 = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 64 <= k; i += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  if (i + 32 <= k) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    i += 32;
  }
  if (i < k) a2 = _mm512_fmadd_ps(_mm512_loadu_ps(c + i), _mm512_loadu_ps(x + i), a2);
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx512f"))) double dot_avx512_d(const double* c, const double* x,
                                                       std::size_t k) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(),
          a3 = _mm512_setzero_pd();
  std::size_t i = 0;
  for (; i + 32 <= k; i += 32) {
    a0 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i), _mm512_loadu_pd(x + i), a0);
    a1 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i + 8), _mm512_loadu_pd(x + i + 8), a1);
    a2 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i + 16), _mm512_loadu_pd(x + i + 16), a2);
    a3 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i + 24), _mm512_loadu_pd(x + i + 24), a3);
  }
  if (i + 16 <= k) {
    a0 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i), _mm512_loadu_pd(x + i), a0);
    a1 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i + 8), _mm512_loadu_pd(x + i + 8), a1);
    i += 16;
  }
  if (i < k) a2 = _mm512_fmadd_pd(_mm512_loadu_pd(c + i), _mm512_loadu_pd(x + i), a2);
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

// ---- AVX-512 group kernels: up to kMaxGroup outputs whose windows start in the same aligned
// block of the history share every load of samples; each output's window is cut out of two
// consecutive sample vectors with a run-time permutation. Each output still accumulates chunk j
// into accumulator j % 4 and reduces ((a0 + a1) + (a2 + a3)), exactly as a group of one, so an
// output's bits do not depend on which outputs it was grouped with.
template <int G>
__attribute__((target("avx512f"))) void group_avx512_f(const float* const* rows,
                                                       const std::uint32_t* shifts,
                                                       const float* x, std::size_t k,
                                                       float* out) {
  __m512i idx[G];
  __m512 acc[G][4];
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int o = 0; o < G; ++o) {
    idx[o] = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(shifts[o])));
    for (int a = 0; a < 4; ++a) acc[o][a] = _mm512_setzero_ps();
  }
  const std::size_t chunks = k / 16;
  __m512 lo = _mm512_loadu_ps(x);
  std::size_t j = 0;
  for (; j + 4 <= chunks; j += 4) {
    for (int a = 0; a < 4; ++a) {
      const __m512 hi = _mm512_loadu_ps(x + 16 * (j + a + 1));
      for (int o = 0; o < G; ++o) {
        const __m512 w = _mm512_permutex2var_ps(lo, idx[o], hi);
        acc[o][a] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[o] + 16 * (j + a)), w, acc[o][a]);
      }
      lo = hi;
    }
  }
  for (int a = 0; j < chunks; ++j, ++a) {
    const __m512 hi = _mm512_loadu_ps(x + 16 * (j + 1));
    for (int o = 0; o < G; ++o) {
      const __m512 w = _mm512_permutex2var_ps(lo, idx[o], hi);
      acc[o][a] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[o] + 16 * j), w, acc[o][a]);
    }
    lo = hi;
  }
  for (int o = 0; o < G; ++o) {
    out[o] = _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(acc[o][0], acc[o][1]), _mm512_add_ps(acc[o][2], acc[o][3])));
  }
}

template <int G>
__attribute__((target("avx512f"))) void group_avx512_d(const double* const* rows,
                                                       const std::uint32_t* shifts,
                                                       const double* x, std::size_t k,
                                                       double* out) {
  __m512i idx[G];
  __m512d acc[G][4];
  const __m512i lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  for (int o = 0; o < G; ++o) {
    idx[o] = _mm512_add_epi64(lanes, _mm512_set1_epi64(static_cast<long long>(shifts[o])));
    for (int a = 0; a < 4; ++a) acc[o][a] = _mm512_setzero_pd();
  }
  const std::size_t chunks = k / 8;
  __m512d lo = _mm512_loadu_pd(x);
  std::size_t j = 0;
  for (; j + 4 <= chunks; j += 4) {
    for (int a = 0; a < 4; ++a) {
      const __m512d hi = _mm512_loadu_pd(x + 8 * (j + a + 1));
      for (int o = 0; o < G; ++o) {
        const __m512d w = _mm512_permutex2var_pd(lo, idx[o], hi);
        acc[o][a] = _mm512_fmadd_pd(_mm512_loadu_pd(rows[o] + 8 * (j + a)), w, acc[o][a]);
      }
      lo = hi;
    }
  }
  for (int a = 0; j < chunks; ++j, ++a) {
    const __m512d hi = _mm512_loadu_pd(x + 8 * (j + 1));
    for (int o = 0; o < G; ++o) {
      const __m512d w = _mm512_permutex2var_pd(lo, idx[o], hi);
      acc[o][a] = _mm512_fmadd_pd(_mm512_loadu_pd(rows[o] + 8 * j), w, acc[o][a]);
    }
    lo = hi;
  }
  for (int o = 0; o < G; ++o) {
    out[o] = _mm512_reduce_add_pd(
        _mm512_add_pd(_mm512_add_pd(acc[o][0], acc[o][1]), _mm512_add_pd(acc[o][2], acc[o][3])));
  }
}

template <typename S, void (*K1)(const S* const*, const std::uint32_t*, const S*, std::size_t, S*),
          void (*K2)(const S* const*, const std::uint32_t*, const S*, std::size_t, S*),
          void (*K3)(const S* const*, const std::uint32_t*, const S*, std::size_t, S*),
          void (*K4)(const S* const*, const std::uint32_t*, const S*, std::size_t, S*)>
void group_switch(const S* const* rows, const std::uint32_t* shifts, const S* x, std::size_t k,
                  std::size_t g, S* out) {
  switch (g) {
    case 1:
      return K1(rows, shifts, x, k, out);
    case 2:
      return K2(rows, shifts, x, k, out);
    case 3:
      return K3(rows, shifts, x, k, out);
    default:
      return K4(rows, shifts, x, k, out);
  }
}

template <typename S, S (*Dot)(const S*, const S*, std::size_t)>
void dot4_from(const S* c, std::size_t row_stride, const S* x, std::size_t k, S* out) {
  for (std::size_t r = 0; r < 4; ++r) out[r] = Dot(c + r * row_stride, x, k);
}
#endif

}  // namespace

template <>
Kernels<float> kernels_for<float>(Isa isa) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kSse2:
      return {dot_sse2_f, dot4_from<float, dot_sse2_f>, group_from<float, dot_sse2_f>};
    case Isa::kAvx2:
      return {dot_avx2_f, dot4_from<float, dot_avx2_f>, group_from<float, dot_avx2_f>};
    case Isa::kAvx512:
      return {dot_avx512_f, dot4_from<float, dot_avx512_f>,
              group_switch<float, group_avx512_f<1>, group_avx512_f<2>, group_avx512_f<3>,
                           group_avx512_f<4>>};
#endif
    default:
      return {dot_portable<float>, dot4_portable<float>, group_from<float, dot_portable<float>>};
  }
}

template <>
Kernels<double> kernels_for<double>(Isa isa) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kSse2:
      return {dot_sse2_d, dot4_from<double, dot_sse2_d>, group_from<double, dot_sse2_d>};
    case Isa::kAvx2:
      return {dot_avx2_d, dot4_from<double, dot_avx2_d>, group_from<double, dot_avx2_d>};
    case Isa::kAvx512:
      return {dot_avx512_d, dot4_from<double, dot_avx512_d>,
              group_switch<double, group_avx512_d<1>, group_avx512_d<2>, group_avx512_d<3>,
                           group_avx512_d<4>>};
#endif
    default:
      return {dot_portable<double>, dot4_portable<double>,
              group_from<double, dot_portable<double>>};
  }
}

bool cpu_supports(Isa isa) {
#if ANUNZI_X86
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kPortable:
      return true;
    case Isa::kSse2:
      return __builtin_cpu_supports("sse2");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f");
  }
  return false;
#else
  return isa == Isa::kPortable;
#endif
}

}  // namespace anunzi::detail
