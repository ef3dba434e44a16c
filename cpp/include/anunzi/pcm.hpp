#pragma once
// PCM sample conversion with the exact semantics of the reference browser client
// (PROTOCOL.md section 3):
//   float -> int16: clamp to [-1, 1]; negatives times 32768, others times 32767, both in double
//                   precision; truncated toward zero; NaN becomes 0.
//   int16 -> float: v / 32768 (exact in float32).
// Every function here dispatches on anunzi::active_isa(); the *_isa variants take the level
// explicitly so tests can check each path against the scalar reference.
#include <cstddef>
#include <cstdint>

#include "anunzi/cpu_dispatch.hpp"

namespace anunzi::pcm {

// The scalar reference: what the browser computes for one sample. float input is widened to
// double first, which is exact, so this one function serves float32 and float64 input.
inline int16_t sample_to_pcm16_reference(double s) {
  if (s != s) return 0;  // NaN: the typed-array store turns NaN into 0
  if (s > 1.0) s = 1.0;
  if (s < -1.0) s = -1.0;
  const double scaled = s < 0.0 ? s * 32768.0 : s * 32767.0;
  return static_cast<int16_t>(static_cast<int32_t>(scaled));  // in range: no overflow
}

// A sample counts as clipped when it lies outside [-1, 1] (so +-Inf count, NaN does not).
inline bool is_clipped(double s) { return s > 1.0 || s < -1.0; }

// Converts n contiguous samples. Returns how many were clipped when count_clipped is true,
// otherwise 0 (counting costs a little, so callers ask for it).
std::size_t float_to_pcm16(const float* in, int16_t* out, std::size_t n, bool count_clipped);
std::size_t double_to_pcm16(const double* in, int16_t* out, std::size_t n, bool count_clipped);
void pcm16_to_float(const int16_t* in, float* out, std::size_t n);

// Strided input (stride in elements, may be negative); scalar, exact, for 1-D views.
std::size_t float_to_pcm16_strided(const float* in, std::ptrdiff_t stride, int16_t* out,
                                   std::size_t n, bool count_clipped);
std::size_t double_to_pcm16_strided(const double* in, std::ptrdiff_t stride, int16_t* out,
                                    std::size_t n, bool count_clipped);
void pcm16_to_float_strided(const int16_t* in, std::ptrdiff_t stride, float* out, std::size_t n);

// Explicit-level variants (the level must be supported by the CPU: isa_supported()).
std::size_t float_to_pcm16_isa(Isa isa, const float* in, int16_t* out, std::size_t n,
                               bool count_clipped);
std::size_t double_to_pcm16_isa(Isa isa, const double* in, int16_t* out, std::size_t n,
                                bool count_clipped);
void pcm16_to_float_isa(Isa isa, const int16_t* in, float* out, std::size_t n);

}  // namespace anunzi::pcm
