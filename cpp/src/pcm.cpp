#include "anunzi/pcm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ANUNZI_X86 1
#include <immintrin.h>
#endif

namespace anunzi::pcm {
namespace {

// ---------------------------------------------------------------------------------------------
// Portable scalar paths (also the tails of the vector paths and the strided paths).

// The reference without branches: audio near full scale makes the clamp and sign branches
// unpredictable (8 ns a sample with them, 3 without). NaN passes through min/max and is
// zeroed after; the scale 32767.5 -+ 0.5 picks 32768 for negatives (and -0, harmlessly).
inline int16_t sample_to_pcm16_branchless(double s) {
  s = std::min(std::max(s, -1.0), 1.0);
  s = s == s ? s : 0.0;
  return static_cast<int16_t>(static_cast<int32_t>(s * (32767.5 - std::copysign(0.5, s))));
}

// Buffers from Python need not be aligned (a memoryview sliced at an odd byte), so scalar code
// moves samples with memcpy, which compiles to plain loads and stores but is defined for any
// address. The vector paths use unaligned loads and stores throughout.
template <typename T>
inline T load(const T* p, std::ptrdiff_t i) {
  T v;
  std::memcpy(&v, reinterpret_cast<const char*>(p) + i * static_cast<std::ptrdiff_t>(sizeof(T)),
              sizeof(T));
  return v;
}

template <typename T>
inline void store(T* p, std::size_t i, T v) {
  std::memcpy(reinterpret_cast<char*>(p) + i * sizeof(T), &v, sizeof(T));
}

template <typename T>
std::size_t to_pcm16_scalar(const T* in, std::ptrdiff_t stride, int16_t* out, std::size_t n,
                            bool count_clipped) {
  std::size_t clipped = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double s = static_cast<double>(load(in, static_cast<std::ptrdiff_t>(i) * stride));
    if (count_clipped) clipped += is_clipped(s) ? 1 : 0;
    store(out, i, sample_to_pcm16_branchless(s));
  }
  return clipped;
}

void pcm16_to_float_scalar(const int16_t* in, std::ptrdiff_t stride, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const int16_t v = load(in, static_cast<std::ptrdiff_t>(i) * stride);
    store(out, i, static_cast<float>(v) * (1.0f / 32768.0f));
  }
}

#if ANUNZI_X86
// ---------------------------------------------------------------------------------------------
// SSE2, the x86-64 baseline. Without FMA the exact positive branch needs the product in
// double precision, as the browser computes it: float * 32767 is exact in double.

inline __m128i float4_to_int32_sse2(__m128 x) {
  const __m128 one = _mm_set1_ps(1.0f);
  const __m128 minus_one = _mm_set1_ps(-1.0f);
  x = _mm_and_ps(x, _mm_cmpord_ps(x, x));  // NaN -> +0
  x = _mm_max_ps(_mm_min_ps(x, one), minus_one);
  const __m128 negative = _mm_cmplt_ps(x, _mm_setzero_ps());
  const __m128 scale = _mm_or_ps(_mm_and_ps(negative, _mm_set1_ps(32768.0f)),
                                 _mm_andnot_ps(negative, _mm_set1_ps(32767.0f)));
  const __m128d lo = _mm_mul_pd(_mm_cvtps_pd(x), _mm_cvtps_pd(scale));
  const __m128d hi =
      _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(x, x)), _mm_cvtps_pd(_mm_movehl_ps(scale, scale)));
  return _mm_unpacklo_epi64(_mm_cvttpd_epi32(lo), _mm_cvttpd_epi32(hi));
}

inline unsigned clipped_mask_sse2(__m128 x) {
  const __m128 beyond = _mm_or_ps(_mm_cmpgt_ps(x, _mm_set1_ps(1.0f)),
                                  _mm_cmplt_ps(x, _mm_set1_ps(-1.0f)));
  return static_cast<unsigned>(_mm_movemask_ps(beyond));
}

std::size_t float_to_pcm16_sse2(const float* in, int16_t* out, std::size_t n, bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128 a = _mm_loadu_ps(in + i);
    const __m128 b = _mm_loadu_ps(in + i + 4);
    if (count) clipped += __builtin_popcount(clipped_mask_sse2(a) | (clipped_mask_sse2(b) << 4));
    const __m128i packed = _mm_packs_epi32(float4_to_int32_sse2(a), float4_to_int32_sse2(b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), packed);
  }
  return clipped + to_pcm16_scalar(in + i, 1, out + i, n - i, count);
}

inline __m128i double2_to_int32_sse2(__m128d x) {
  x = _mm_and_pd(x, _mm_cmpord_pd(x, x));
  x = _mm_max_pd(_mm_min_pd(x, _mm_set1_pd(1.0)), _mm_set1_pd(-1.0));
  const __m128d negative = _mm_cmplt_pd(x, _mm_setzero_pd());
  const __m128d scale = _mm_or_pd(_mm_and_pd(negative, _mm_set1_pd(32768.0)),
                                  _mm_andnot_pd(negative, _mm_set1_pd(32767.0)));
  return _mm_cvttpd_epi32(_mm_mul_pd(x, scale));  // two int32 in the low half
}

inline unsigned clipped_mask_sse2(__m128d x) {
  const __m128d beyond = _mm_or_pd(_mm_cmpgt_pd(x, _mm_set1_pd(1.0)),
                                   _mm_cmplt_pd(x, _mm_set1_pd(-1.0)));
  return static_cast<unsigned>(_mm_movemask_pd(beyond));
}

std::size_t double_to_pcm16_sse2(const double* in, int16_t* out, std::size_t n, bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 8 <= n; i += 8) {
    __m128d x[4];
    for (int k = 0; k < 4; ++k) x[k] = _mm_loadu_pd(in + i + 2 * k);
    if (count) {
      for (int k = 0; k < 4; ++k) clipped += __builtin_popcount(clipped_mask_sse2(x[k]));
    }
    const __m128i lo = _mm_unpacklo_epi64(double2_to_int32_sse2(x[0]), double2_to_int32_sse2(x[1]));
    const __m128i hi = _mm_unpacklo_epi64(double2_to_int32_sse2(x[2]), double2_to_int32_sse2(x[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packs_epi32(lo, hi));
  }
  return clipped + to_pcm16_scalar(in + i, 1, out + i, n - i, count);
}

void pcm16_to_float_sse2(const int16_t* in, float* out, std::size_t n) {
  const __m128 scale = _mm_set1_ps(1.0f / 32768.0f);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    // Sign-extend by placing each int16 in the high half of an int32 and shifting back.
    const __m128i lo = _mm_srai_epi32(_mm_unpacklo_epi16(v, v), 16);
    const __m128i hi = _mm_srai_epi32(_mm_unpackhi_epi16(v, v), 16);
    _mm_storeu_ps(out + i, _mm_mul_ps(_mm_cvtepi32_ps(lo), scale));
    _mm_storeu_ps(out + i + 4, _mm_mul_ps(_mm_cvtepi32_ps(hi), scale));
  }
  pcm16_to_float_scalar(in + i, 1, out + i, n - i);
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA. Here the positive branch stays in float32: p = x * 32767 rounded, and FMA gives
// the exact rounding error e = x * 32767 - p. The truncation of the exact product differs from
// trunc(p) only when p is an integer that the exact product lies just below (e < 0): then it is
// p - 1. (No integer can lie strictly between p and the exact product: integers below 2^24 are
// floats, so one would be nearer than p.) Negative products are exact (times 2^15).

#define ANUNZI_AVX2 __attribute__((target("avx2,fma")))

ANUNZI_AVX2 inline __m256i float8_to_int32_avx2(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 zero = _mm256_setzero_ps();
  x = _mm256_and_ps(x, _mm256_cmp_ps(x, x, _CMP_ORD_Q));
  x = _mm256_max_ps(_mm256_min_ps(x, one), _mm256_set1_ps(-1.0f));
  const __m256 negative = _mm256_cmp_ps(x, zero, _CMP_LT_OQ);
  const __m256 scale =
      _mm256_blendv_ps(_mm256_set1_ps(32767.0f), _mm256_set1_ps(32768.0f), negative);
  const __m256 p = _mm256_mul_ps(x, scale);
  const __m256 e = _mm256_fmsub_ps(x, scale, p);
  __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 below = _mm256_and_ps(_mm256_cmp_ps(t, p, _CMP_EQ_OQ),
                                     _mm256_cmp_ps(e, zero, _CMP_LT_OQ));
  t = _mm256_sub_ps(t, _mm256_and_ps(below, one));
  return _mm256_cvttps_epi32(t);
}

ANUNZI_AVX2 inline unsigned clipped_mask_avx2(__m256 x) {
  const __m256 beyond = _mm256_or_ps(_mm256_cmp_ps(x, _mm256_set1_ps(1.0f), _CMP_GT_OQ),
                                     _mm256_cmp_ps(x, _mm256_set1_ps(-1.0f), _CMP_LT_OQ));
  return static_cast<unsigned>(_mm256_movemask_ps(beyond));
}

ANUNZI_AVX2 std::size_t float_to_pcm16_avx2(const float* in, int16_t* out, std::size_t n,
                                            bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(in + i);
    const __m256 b = _mm256_loadu_ps(in + i + 8);
    if (count) clipped += __builtin_popcount(clipped_mask_avx2(a) | (clipped_mask_avx2(b) << 8));
    // packs works per 128-bit lane; the permute puts the four 64-bit groups back in order.
    const __m256i packed = _mm256_packs_epi32(float8_to_int32_avx2(a), float8_to_int32_avx2(b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_permute4x64_epi64(packed, 0xD8));
  }
  return clipped + to_pcm16_scalar(in + i, 1, out + i, n - i, count);
}

ANUNZI_AVX2 inline __m128i double4_to_int32_avx2(__m256d x) {
  x = _mm256_and_pd(x, _mm256_cmp_pd(x, x, _CMP_ORD_Q));
  x = _mm256_max_pd(_mm256_min_pd(x, _mm256_set1_pd(1.0)), _mm256_set1_pd(-1.0));
  const __m256d negative = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);
  const __m256d scale =
      _mm256_blendv_pd(_mm256_set1_pd(32767.0), _mm256_set1_pd(32768.0), negative);
  return _mm256_cvttpd_epi32(_mm256_mul_pd(x, scale));
}

ANUNZI_AVX2 inline unsigned clipped_mask_avx2(__m256d x) {
  const __m256d beyond = _mm256_or_pd(_mm256_cmp_pd(x, _mm256_set1_pd(1.0), _CMP_GT_OQ),
                                      _mm256_cmp_pd(x, _mm256_set1_pd(-1.0), _CMP_LT_OQ));
  return static_cast<unsigned>(_mm256_movemask_pd(beyond));
}

ANUNZI_AVX2 std::size_t double_to_pcm16_avx2(const double* in, int16_t* out, std::size_t n,
                                             bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d a = _mm256_loadu_pd(in + i);
    const __m256d b = _mm256_loadu_pd(in + i + 4);
    if (count) clipped += __builtin_popcount(clipped_mask_avx2(a) | (clipped_mask_avx2(b) << 4));
    const __m128i packed = _mm_packs_epi32(double4_to_int32_avx2(a), double4_to_int32_avx2(b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), packed);
  }
  return clipped + to_pcm16_scalar(in + i, 1, out + i, n - i, count);
}

ANUNZI_AVX2 void pcm16_to_float_avx2(const int16_t* in, float* out, std::size_t n) {
  const __m256 scale = _mm256_set1_ps(1.0f / 32768.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i lo =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    const __m256i hi =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 8)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), scale));
    _mm256_storeu_ps(out + i + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), scale));
  }
  pcm16_to_float_scalar(in + i, 1, out + i, n - i);
}

// ---------------------------------------------------------------------------------------------
// AVX-512: 16 lanes, with masks for NaN, the sign and the tail (no scalar tail), and the
// product rounded toward zero by the instruction itself, which makes the AVX2 fix-up needless.

#define ANUNZI_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

ANUNZI_AVX512 inline __m512i float16_to_int32_avx512(__m512 x) {
  x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x);
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(1.0f)), _mm512_set1_ps(-1.0f));
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 scale =
      _mm512_mask_blend_ps(negative, _mm512_set1_ps(32767.0f), _mm512_set1_ps(32768.0f));
  // Rounding the product toward zero never crosses an integer (integers below 2^24 are
  // floats), so truncating it equals truncating the exact product.
  return _mm512_cvttps_epi32(_mm512_mul_round_ps(x, scale, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
}

ANUNZI_AVX512 inline unsigned clipped_mask_avx512(__m512 x) {
  return _mm512_cmp_ps_mask(x, _mm512_set1_ps(1.0f), _CMP_GT_OQ) |
         _mm512_cmp_ps_mask(x, _mm512_set1_ps(-1.0f), _CMP_LT_OQ);
}

ANUNZI_AVX512 std::size_t float_to_pcm16_avx512(const float* in, int16_t* out, std::size_t n,
                                                bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(in + i);
    if (count) clipped += __builtin_popcount(clipped_mask_avx512(x));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtsepi32_epi16(float16_to_int32_avx512(x)));
  }
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 x = _mm512_maskz_loadu_ps(tail, in + i);
    if (count) clipped += __builtin_popcount(clipped_mask_avx512(x) & tail);
    _mm512_mask_cvtsepi32_storeu_epi16(out + i, tail, float16_to_int32_avx512(x));
  }
  return clipped;
}

ANUNZI_AVX512 inline __m256i double8_to_int32_avx512(__m512d x) {
  x = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, x, _CMP_ORD_Q), x);
  x = _mm512_max_pd(_mm512_min_pd(x, _mm512_set1_pd(1.0)), _mm512_set1_pd(-1.0));
  const __mmask8 negative = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_LT_OQ);
  const __m512d scale =
      _mm512_mask_blend_pd(negative, _mm512_set1_pd(32767.0), _mm512_set1_pd(32768.0));
  return _mm512_cvttpd_epi32(_mm512_mul_pd(x, scale));
}

ANUNZI_AVX512 inline unsigned clipped_mask_avx512(__m512d x) {
  return _mm512_cmp_pd_mask(x, _mm512_set1_pd(1.0), _CMP_GT_OQ) |
         _mm512_cmp_pd_mask(x, _mm512_set1_pd(-1.0), _CMP_LT_OQ);
}

ANUNZI_AVX512 std::size_t double_to_pcm16_avx512(const double* in, int16_t* out, std::size_t n,
                                                 bool count) {
  std::size_t i = 0;
  std::size_t clipped = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512d a = _mm512_loadu_pd(in + i);
    const __m512d b = _mm512_loadu_pd(in + i + 8);
    if (count) clipped += __builtin_popcount(clipped_mask_avx512(a) | (clipped_mask_avx512(b) << 8));
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(double8_to_int32_avx512(a)),
                                            double8_to_int32_avx512(b), 1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtsepi32_epi16(both));
  }
  for (; i < n; i += 8) {
    const std::size_t left = n - i < 8 ? n - i : 8;
    const __mmask8 tail = static_cast<__mmask8>((1u << left) - 1u);
    const __m512d x = _mm512_maskz_loadu_pd(tail, in + i);
    if (count) clipped += __builtin_popcount(clipped_mask_avx512(x) & tail);
    _mm256_mask_cvtsepi32_storeu_epi16(out + i, tail, double8_to_int32_avx512(x));
  }
  return clipped;
}

ANUNZI_AVX512 void pcm16_to_float_avx512(const int16_t* in, float* out, std::size_t n) {
  const __m512 scale = _mm512_set1_ps(1.0f / 32768.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i v =
        _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i)));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale));
  }
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512i v = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(tail, in + i));
    _mm512_mask_storeu_ps(out + i, tail, _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale));
  }
}
#endif  // ANUNZI_X86

}  // namespace

std::size_t float_to_pcm16_isa(Isa isa, const float* in, int16_t* out, std::size_t n,
                               bool count_clipped) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kAvx512:
      return float_to_pcm16_avx512(in, out, n, count_clipped);
    case Isa::kAvx2:
      return float_to_pcm16_avx2(in, out, n, count_clipped);
    case Isa::kSse2:
      return float_to_pcm16_sse2(in, out, n, count_clipped);
#endif
    default:
      return to_pcm16_scalar(in, 1, out, n, count_clipped);
  }
}

std::size_t double_to_pcm16_isa(Isa isa, const double* in, int16_t* out, std::size_t n,
                                bool count_clipped) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kAvx512:
      return double_to_pcm16_avx512(in, out, n, count_clipped);
    case Isa::kAvx2:
      return double_to_pcm16_avx2(in, out, n, count_clipped);
    case Isa::kSse2:
      return double_to_pcm16_sse2(in, out, n, count_clipped);
#endif
    default:
      return to_pcm16_scalar(in, 1, out, n, count_clipped);
  }
}

void pcm16_to_float_isa(Isa isa, const int16_t* in, float* out, std::size_t n) {
  switch (isa) {
#if ANUNZI_X86
    case Isa::kAvx512:
      return pcm16_to_float_avx512(in, out, n);
    case Isa::kAvx2:
      return pcm16_to_float_avx2(in, out, n);
    case Isa::kSse2:
      return pcm16_to_float_sse2(in, out, n);
#endif
    default:
      return pcm16_to_float_scalar(in, 1, out, n);
  }
}

std::size_t float_to_pcm16(const float* in, int16_t* out, std::size_t n, bool count_clipped) {
  return float_to_pcm16_isa(active_isa(), in, out, n, count_clipped);
}

std::size_t double_to_pcm16(const double* in, int16_t* out, std::size_t n, bool count_clipped) {
  return double_to_pcm16_isa(active_isa(), in, out, n, count_clipped);
}

void pcm16_to_float(const int16_t* in, float* out, std::size_t n) {
  pcm16_to_float_isa(active_isa(), in, out, n);
}

std::size_t float_to_pcm16_strided(const float* in, std::ptrdiff_t stride, int16_t* out,
                                   std::size_t n, bool count_clipped) {
  return to_pcm16_scalar(in, stride, out, n, count_clipped);
}

std::size_t double_to_pcm16_strided(const double* in, std::ptrdiff_t stride, int16_t* out,
                                    std::size_t n, bool count_clipped) {
  return to_pcm16_scalar(in, stride, out, n, count_clipped);
}

void pcm16_to_float_strided(const int16_t* in, std::ptrdiff_t stride, float* out, std::size_t n) {
  pcm16_to_float_scalar(in, stride, out, n);
}

}  // namespace anunzi::pcm
