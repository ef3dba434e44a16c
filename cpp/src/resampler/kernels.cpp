// Dot-product kernels of the resampler, one variant per instruction set.
//
// The wider variants are compiled with per-function target attributes, never -march, so the
// library runs on any x86-64 and picks its path at run time. Each variant has a fixed summation
// order, so a given path gives the same bits for the same taps and samples wherever they sit in
// memory; different paths may differ in the last bits.
#include "kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <type_traits>

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
void group_from(const S* const* rows, const S* const* xs, const S* /*block*/, std::size_t k,
                std::size_t g, S* out) {
  for (std::size_t o = 0; o < g; ++o) out[o] = Dot(rows[o], xs[o], k);
}


#if ANUNZI_X86
// GCC 12's AVX-512 headers trip -Wuninitialized on their own "undefined" operands (GCC bug
// 105593, fixed in GCC 13); the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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



// ---- AVX2 group kernels: the same grouping as AVX-512, minus the permutation (AVX2 has no
// two-source permute): outputs share a coefficient row or a window, else load their own
// windows unaligned. One accumulator per output, chunks in order, one fixed reduction tree.
template <typename S>
struct Avx2Ops;

template <>
struct Avx2Ops<float> {
  static constexpr std::size_t kLanes = 8;
  using Vec = __m256;
  __attribute__((target("avx2,fma"), always_inline)) static Vec zero() {
    return _mm256_setzero_ps();
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec load(const float* p) {
    return _mm256_loadu_ps(p);
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec fma(Vec a, Vec b, Vec c) {
    return _mm256_fmadd_ps(a, b, c);
  }
  __attribute__((target("avx2,fma"), always_inline)) static float reduce(Vec a) {
    return hsum256_ps(a);
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec broadcast(const float* p) {
    return _mm256_broadcast_ss(p);
  }
  __attribute__((target("avx2,fma"), always_inline)) static void store(float* p, Vec a) {
    _mm256_store_ps(p, a);
  }
};

template <>
struct Avx2Ops<double> {
  static constexpr std::size_t kLanes = 4;
  using Vec = __m256d;
  __attribute__((target("avx2,fma"), always_inline)) static Vec zero() {
    return _mm256_setzero_pd();
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec load(const double* p) {
    return _mm256_loadu_pd(p);
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec fma(Vec a, Vec b, Vec c) {
    return _mm256_fmadd_pd(a, b, c);
  }
  __attribute__((target("avx2,fma"), always_inline)) static double reduce(Vec a) {
    return hsum256_pd(a);
  }
  __attribute__((target("avx2,fma"), always_inline)) static Vec broadcast(const double* p) {
    return _mm256_broadcast_sd(p);
  }
  __attribute__((target("avx2,fma"), always_inline)) static void store(double* p, Vec a) {
    _mm256_store_pd(p, a);
  }
};

// Consecutive windows, eight (four) outputs per register, four registers per pass so four
// independent chains hide the multiply-add latency.
// V registers of consecutive outputs in one pass over the taps: V independent chains.
template <typename S, int V>
__attribute__((target("avx2,fma"))) void consecutive_pass_avx2(const S* row, const S* x, std::size_t k,
                                                    std::size_t n, S* out) {
  using Ops = Avx2Ops<S>;
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  Vec acc[V];
  for (int v = 0; v < V; ++v) acc[v] = Ops::zero();
  for (std::size_t t = 0; t < k; ++t) {
    const Vec c = Ops::broadcast(row + t);
    for (int v = 0; v < V; ++v) acc[v] = Ops::fma(c, Ops::load(x + t + v * kW), acc[v]);
  }
  alignas(64) S tmp[kW];
  for (int v = 0; v < V; ++v) {
    const std::size_t first = static_cast<std::size_t>(v) * kW;
    if (first >= n) break;
    Ops::store(tmp, acc[v]);
    const std::size_t count = std::min(kW, n - first);
    for (std::size_t l = 0; l < count; ++l) out[first + l] = tmp[l];
  }
}

// Only as many registers as there are outputs left, so reads end within one vector past
// the last window.
template <typename S>
void consecutive_avx2(const S* row, const S* x, std::size_t k, std::size_t n, S* out) {
  constexpr std::size_t kW = Avx2Ops<S>::kLanes;
  std::size_t j = 0;
  for (; j + 4 * kW <= n; j += 4 * kW) consecutive_pass_avx2<S, 4>(row, x + j, k, 4 * kW, out + j);
  const std::size_t left = n - j;
  if (left > 3 * kW) {
    consecutive_pass_avx2<S, 4>(row, x + j, k, left, out + j);
  } else if (left > 2 * kW) {
    consecutive_pass_avx2<S, 3>(row, x + j, k, left, out + j);
  } else if (left > kW) {
    consecutive_pass_avx2<S, 2>(row, x + j, k, left, out + j);
  } else if (left > 0) {
    consecutive_pass_avx2<S, 1>(row, x + j, k, left, out + j);
  }
}

enum class Avx2Share { kRow, kWindow, kNone };

template <typename S, int G, Avx2Share kShare>
__attribute__((target("avx2,fma"))) void group_avx2(const S* const* rows, const S* const* xs,
                                                   std::size_t k, S* out) {
  using Ops = Avx2Ops<S>;
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  Vec acc[G];
  for (int o = 0; o < G; ++o) acc[o] = Ops::zero();
  const std::size_t chunks = k / kW;
  for (std::size_t j = 0; j < chunks; ++j) {
    if (kShare == Avx2Share::kRow) {
      const Vec c = Ops::load(rows[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(c, Ops::load(xs[o] + kW * j), acc[o]);
    } else if (kShare == Avx2Share::kWindow) {
      const Vec w = Ops::load(xs[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), w, acc[o]);
    } else {
      for (int o = 0; o < G; ++o) {
        acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), Ops::load(xs[o] + kW * j), acc[o]);
      }
    }
  }
  for (int o = 0; o < G; ++o) out[o] = Ops::reduce(acc[o]);
}

template <typename S, Avx2Share kShare>
void group_avx2_n(const S* const* rows, const S* const* xs, std::size_t k, std::size_t g,
                  S* out) {
  switch (g) {
    case 1:
      return group_avx2<S, 1, kShare>(rows, xs, k, out);
    case 2:
      return group_avx2<S, 2, kShare>(rows, xs, k, out);
    case 3:
      return group_avx2<S, 3, kShare>(rows, xs, k, out);
    case 4:
      return group_avx2<S, 4, kShare>(rows, xs, k, out);
    case 5:
      return group_avx2<S, 5, kShare>(rows, xs, k, out);
    case 6:
      return group_avx2<S, 6, kShare>(rows, xs, k, out);
    case 7:
      return group_avx2<S, 7, kShare>(rows, xs, k, out);
    default:
      return group_avx2<S, 8, kShare>(rows, xs, k, out);
  }
}

template <typename S>
void group_avx2_dispatch(const S* const* rows, const S* const* xs, const S* /*block*/,
                         std::size_t k, std::size_t g, S* out) {
  bool same_row = true, same_window = true;
  for (std::size_t o = 1; o < g; ++o) {
    same_row = same_row && rows[o] == rows[0];
    same_window = same_window && xs[o] == xs[0];
  }
  if (same_row) return group_avx2_n<S, Avx2Share::kRow>(rows, xs, k, g, out);
  if (same_window) return group_avx2_n<S, Avx2Share::kWindow>(rows, xs, k, g, out);
  // Unshared outputs need two pointers each: in fours they stay in the 16 general registers.
  for (std::size_t o = 0; o < g; o += 4) {
    group_avx2_n<S, Avx2Share::kNone>(rows + o, xs + o, k, std::min<std::size_t>(4, g - o),
                                      out + o);
  }
}

// ---- AVX-512 group kernels. Up to kMaxGroup outputs are computed together so that loads are
// shared: one coefficient row for all (decimation), one sample window for all (interpolation),
// or, for windows starting in the same aligned block, shared sample vectors from which each
// window is cut with a run-time permutation. Whatever the variant, each output adds its chunks in
// order into one accumulator and reduces it the same way, so its bits never depend on the
// variant or on which outputs it was grouped with.
enum class Share { kRow, kWindow, kBlock };

template <typename V>
struct Avx512Ops;

template <>
struct Avx512Ops<float> {
  static constexpr std::size_t kLanes = 16;
  using Vec = __m512;
  __attribute__((target("avx512f"), always_inline)) static Vec zero() {
    return _mm512_setzero_ps();
  }
  __attribute__((target("avx512f"), always_inline)) static Vec load(const float* p) {
    return _mm512_loadu_ps(p);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec fma(Vec a, Vec b, Vec c) {
    return _mm512_fmadd_ps(a, b, c);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec add(Vec a, Vec b) {
    return _mm512_add_ps(a, b);
  }
  // The pairing of _mm512_reduce_add_ps (halves of 256, 128 bits, then 2 and 1 lanes apart),
  // written out because GCC 12's version warns about an uninitialised operand.
  __attribute__((target("avx512f"), always_inline)) static float reduce(Vec a) {
    const __m512 s1 = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xEE));
    const __m512 s2 = _mm512_add_ps(s1, _mm512_shuffle_f32x4(s1, s1, 0x01));
    const __m512 s3 = _mm512_add_ps(s2, _mm512_permute_ps(s2, 0x4E));
    const __m512 s4 = _mm512_add_ps(s3, _mm512_permute_ps(s3, 0xB1));
    return _mm512_cvtss_f32(s4);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec broadcast(const float* p) {
    return _mm512_set1_ps(*p);
  }
  __attribute__((target("avx512f"), always_inline)) static void store(float* p, Vec a) {
    _mm512_store_ps(p, a);
  }
  __attribute__((target("avx512f"), always_inline)) static __m512i index(std::ptrdiff_t shift) {
    return _mm512_add_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(static_cast<int>(shift)));
  }
  __attribute__((target("avx512f"), always_inline)) static Vec cut(Vec lo, __m512i idx, Vec hi) {
    return _mm512_permutex2var_ps(lo, idx, hi);
  }
};

template <>
struct Avx512Ops<double> {
  static constexpr std::size_t kLanes = 8;
  using Vec = __m512d;
  __attribute__((target("avx512f"), always_inline)) static Vec zero() {
    return _mm512_setzero_pd();
  }
  __attribute__((target("avx512f"), always_inline)) static Vec load(const double* p) {
    return _mm512_loadu_pd(p);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec fma(Vec a, Vec b, Vec c) {
    return _mm512_fmadd_pd(a, b, c);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec add(Vec a, Vec b) {
    return _mm512_add_pd(a, b);
  }
  __attribute__((target("avx512f"), always_inline)) static double reduce(Vec a) {
    const __m512d s1 = _mm512_add_pd(a, _mm512_shuffle_f64x2(a, a, 0xEE));
    const __m512d s2 = _mm512_add_pd(s1, _mm512_shuffle_f64x2(s1, s1, 0x01));
    const __m512d s3 = _mm512_add_pd(s2, _mm512_permute_pd(s2, 0x55));
    return _mm512_cvtsd_f64(s3);
  }
  __attribute__((target("avx512f"), always_inline)) static Vec broadcast(const double* p) {
    return _mm512_set1_pd(*p);
  }
  __attribute__((target("avx512f"), always_inline)) static void store(double* p, Vec a) {
    _mm512_store_pd(p, a);
  }
  __attribute__((target("avx512f"), always_inline)) static __m512i index(std::ptrdiff_t shift) {
    return _mm512_add_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
                            _mm512_set1_epi64(static_cast<long long>(shift)));
  }
  __attribute__((target("avx512f"), always_inline)) static Vec cut(Vec lo, __m512i idx, Vec hi) {
    return _mm512_permutex2var_pd(lo, idx, hi);
  }
};

// Eight horizontal sums at once, with exactly the pairing of _mm512_reduce_add_ps (halves of
// 256, then 128 bits, then lanes 2 apart, then 1 apart), so each sum has the same bits as a
// reduction on its own.
__attribute__((target("avx512f"), always_inline)) inline void reduce8_avx512(
    __m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6, __m512 a7,
    float* out) {
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

// V registers of consecutive outputs in one pass over the taps: V independent chains.
template <typename S, int V>
__attribute__((target("avx512f"))) void consecutive_pass_avx512(const S* row, const S* x, std::size_t k,
                                                    std::size_t n, S* out) {
  using Ops = Avx512Ops<S>;
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  Vec acc[V];
  for (int v = 0; v < V; ++v) acc[v] = Ops::zero();
  for (std::size_t t = 0; t < k; ++t) {
    const Vec c = Ops::broadcast(row + t);
    for (int v = 0; v < V; ++v) acc[v] = Ops::fma(c, Ops::load(x + t + v * kW), acc[v]);
  }
  alignas(64) S tmp[kW];
  for (int v = 0; v < V; ++v) {
    const std::size_t first = static_cast<std::size_t>(v) * kW;
    if (first >= n) break;
    Ops::store(tmp, acc[v]);
    const std::size_t count = std::min(kW, n - first);
    for (std::size_t l = 0; l < count; ++l) out[first + l] = tmp[l];
  }
}

// Only as many registers as there are outputs left, so reads end within one vector past
// the last window.
template <typename S>
void consecutive_avx512(const S* row, const S* x, std::size_t k, std::size_t n, S* out) {
  constexpr std::size_t kW = Avx512Ops<S>::kLanes;
  std::size_t j = 0;
  for (; j + 4 * kW <= n; j += 4 * kW) consecutive_pass_avx512<S, 4>(row, x + j, k, 4 * kW, out + j);
  const std::size_t left = n - j;
  if (left > 3 * kW) {
    consecutive_pass_avx512<S, 4>(row, x + j, k, left, out + j);
  } else if (left > 2 * kW) {
    consecutive_pass_avx512<S, 3>(row, x + j, k, left, out + j);
  } else if (left > kW) {
    consecutive_pass_avx512<S, 2>(row, x + j, k, left, out + j);
  } else if (left > 0) {
    consecutive_pass_avx512<S, 1>(row, x + j, k, left, out + j);
  }
}

template <typename S, int G, Share kShare>
__attribute__((target("avx512f"))) void group_avx512(const S* const* rows, const S* const* xs,
                                                     const S* block, std::size_t k, S* out) {
  using Ops = Avx512Ops<S>;
  using Vec = typename Ops::Vec;
  constexpr std::size_t kW = Ops::kLanes;
  // One accumulator per output, chunks summed in order: the G outputs of a group are the
  // independent chains that hide the FMA latency.
  Vec acc[G];
  __m512i idx[G];
  for (int o = 0; o < G; ++o) {
    acc[o] = Ops::zero();
    idx[o] = Ops::index(kShare == Share::kBlock ? xs[o] - block : 0);
  }
  const std::size_t chunks = k / kW;
  if (kShare == Share::kRow) {
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec c = Ops::load(rows[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(c, Ops::load(xs[o] + kW * j), acc[o]);
    }
  } else if (kShare == Share::kWindow) {
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec w = Ops::load(xs[0] + kW * j);
      for (int o = 0; o < G; ++o) acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), w, acc[o]);
    }
  } else {
    Vec lo = Ops::load(block);
    for (std::size_t j = 0; j < chunks; ++j) {
      const Vec hi = Ops::load(block + kW * (j + 1));
      for (int o = 0; o < G; ++o) {
        acc[o] = Ops::fma(Ops::load(rows[o] + kW * j), Ops::cut(lo, idx[o], hi), acc[o]);
      }
      lo = hi;
    }
  }
  if constexpr (G == 8 && std::is_same<S, float>::value) {
    reduce8_avx512(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7], out);
  } else {
    for (int o = 0; o < G; ++o) out[o] = Ops::reduce(acc[o]);
  }
}

template <typename S, Share kShare>
void group_avx512_n(const S* const* rows, const S* const* xs, const S* block, std::size_t k,
                    std::size_t g, S* out) {
  switch (g) {
    case 1:
      return group_avx512<S, 1, kShare>(rows, xs, block, k, out);
    case 2:
      return group_avx512<S, 2, kShare>(rows, xs, block, k, out);
    case 3:
      return group_avx512<S, 3, kShare>(rows, xs, block, k, out);
    case 4:
      return group_avx512<S, 4, kShare>(rows, xs, block, k, out);
    case 5:
      return group_avx512<S, 5, kShare>(rows, xs, block, k, out);
    case 6:
      return group_avx512<S, 6, kShare>(rows, xs, block, k, out);
    case 7:
      return group_avx512<S, 7, kShare>(rows, xs, block, k, out);
    default:
      return group_avx512<S, 8, kShare>(rows, xs, block, k, out);
  }
}

template <typename S>
void group_avx512_dispatch(const S* const* rows, const S* const* xs, const S* block,
                           std::size_t k, std::size_t g, S* out) {
  bool same_row = true, same_window = true;
  for (std::size_t o = 1; o < g; ++o) {
    same_row = same_row && rows[o] == rows[0];
    same_window = same_window && xs[o] == xs[0];
  }
  if (same_row) return group_avx512_n<S, Share::kRow>(rows, xs, block, k, g, out);
  if (same_window) return group_avx512_n<S, Share::kWindow>(rows, xs, block, k, g, out);
  if (block != nullptr) return group_avx512_n<S, Share::kBlock>(rows, xs, block, k, g, out);
  for (std::size_t o = 0; o < g; ++o) {
    group_avx512<S, 1, Share::kRow>(rows + o, xs + o, nullptr, k, out + o);
  }
}

#endif

}  // namespace

template <>
Kernels<float> kernels_for<float>(Isa isa) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kSse2:
      return {group_from<float, dot_sse2_f>, nullptr};
    case Isa::kAvx2:
      return {group_avx2_dispatch<float>, consecutive_avx2<float>};
    case Isa::kAvx512:
      return {group_avx512_dispatch<float>, consecutive_avx512<float>};
#endif
    default:
      return {group_from<float, dot_portable<float>>, nullptr};
  }
}

template <>
Kernels<double> kernels_for<double>(Isa isa) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kSse2:
      return {group_from<double, dot_sse2_d>, nullptr};
    case Isa::kAvx2:
      return {group_avx2_dispatch<double>, consecutive_avx2<double>};
    case Isa::kAvx512:
      return {group_avx512_dispatch<double>, consecutive_avx512<double>};
#endif
    default:
      return {group_from<double, dot_portable<double>>, nullptr};
  }
}

}  // namespace anunzi::detail
